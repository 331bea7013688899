//! What machine the numbers come from, and pinning the two processes to CPUs, as
//! `ipcx bench` does (`crates/ipcx-cli/src/bench/machine.rs`): this side on the first
//! CPU it may use, the peer on the second.

use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};
use serde::Serialize;

use crate::Fallible;

/// The machine, as the report describes it.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// The CPU model (`model name` in /proc/cpuinfo).
    pub cpu: String,
    /// Whether the CPU reports running under a hypervisor.
    pub virtual_machine: bool,
    /// CPUs online.
    pub cpus_online: usize,
    /// CPUs this process may run on.
    pub cpus_allowed: Vec<usize>,
    /// The kernel release.
    pub kernel: String,
    /// The CPUs this side and its peer are pinned to, when there are two.
    pub pinned: Option<(usize, usize)>,
    /// `/proc/loadavg` when the run started and when it ended: how busy the machine was.
    pub load_before: String,
    pub load_after: String,
}

impl Machine {
    /// Describes this machine and picks two CPUs.
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
            .unwrap_or_else(|| "unknown CPU".into());
        let virtual_machine =
            field("flags").is_some_and(|f| f.split(' ').any(|x| x == "hypervisor"));
        let cpus_online = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cpus_allowed = match sched_getaffinity(None) {
            Ok(set) => (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect(),
            Err(_) => Vec::new(),
        };
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
            load_before: load(),
            load_after: String::new(),
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

/// The first three fields of `/proc/loadavg` (1, 5 and 15 minutes).
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Pins the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> Fallible<()> {
    let mut set = CpuSet::new();
    set.set(cpu);
    sched_setaffinity(None, &set).map_err(|e| format!("sched_setaffinity to CPU {cpu}: {e}"))?;
    Ok(())
}
