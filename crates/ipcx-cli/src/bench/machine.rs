//! What machine the numbers come from, and pinning the two processes to CPUs.

use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};
use serde::Serialize;

use super::Fallible;

/// The machine, as the report describes it.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// The CPU model (`model name` in /proc/cpuinfo).
    pub cpu: String,
    /// Whether the CPU reports running under a hypervisor.
    pub virtual_machine: bool,
    /// CPUs online.
    pub cpus_online: usize,
    /// CPUs this process may run on (its affinity mask).
    pub cpus_allowed: Vec<usize>,
    /// The kernel release (`uname -r`).
    pub kernel: String,
    /// The CPUs the bench and its peer are pinned to, when there are two.
    pub pinned: Option<(usize, usize)>,
}

impl Machine {
    /// Describes this machine and picks two CPUs for the bench and its peer.
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            cpuinfo.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == name).then(|| v.trim().to_string())
            })
        };
        let cpu = field("model name")
            .or_else(|| field("Model"))
            .or_else(|| field("cpu model"))
            .or_else(|| field("Hardware"))
            .unwrap_or_else(|| "unknown CPU".into());
        let virtual_machine =
            field("flags").is_some_and(|f| f.split(' ').any(|x| x == "hypervisor"));
        let cpus_online = std::fs::read_to_string("/sys/devices/system/cpu/online")
            .ok()
            .and_then(|s| count_cpu_list(s.trim()))
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let cpus_allowed = allowed_cpus();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let pinned = match cpus_allowed.as_slice() {
            [a, b, ..] => Some((*a, *b)),
            _ => None,
        };
        Machine {
            cpu,
            virtual_machine,
            cpus_online,
            cpus_allowed,
            kernel,
            pinned,
        }
    }

    /// One line: `AMD EPYC (virtual machine), 2 CPUs, Linux 6.1.0`.
    pub fn summary(&self) -> String {
        format!(
            "{}{}, {} CPU{}, Linux {}",
            self.cpu,
            if self.virtual_machine {
                " (virtual machine)"
            } else {
                ""
            },
            self.cpus_online,
            if self.cpus_online == 1 { "" } else { "s" },
            self.kernel
        )
    }
}

/// The CPUs this thread may run on.
fn allowed_cpus() -> Vec<usize> {
    match sched_getaffinity(None) {
        Ok(set) => (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect(),
        Err(_) => Vec::new(),
    }
}

/// Counts the CPUs in a list like `0-3,8,10-11`.
fn count_cpu_list(list: &str) -> Option<usize> {
    let mut n = 0;
    for part in list.split(',') {
        n += match part.split_once('-') {
            Some((a, b)) => {
                b.parse::<usize>()
                    .ok()?
                    .checked_sub(a.parse::<usize>().ok()?)?
                    + 1
            }
            None => {
                part.parse::<usize>().ok()?;
                1
            }
        };
    }
    Some(n)
}

/// Pins the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> Fallible<()> {
    let mut set = CpuSet::new();
    set.set(cpu);
    sched_setaffinity(None, &set).map_err(|e| format!("sched_setaffinity to CPU {cpu}: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::count_cpu_list;

    #[test]
    fn cpu_lists_count() {
        assert_eq!(count_cpu_list("0"), Some(1));
        assert_eq!(count_cpu_list("0-1"), Some(2));
        assert_eq!(count_cpu_list("0-3,8,10-11"), Some(7));
        assert_eq!(count_cpu_list("x"), None);
        assert_eq!(count_cpu_list("3-1"), None);
    }
}
