//! Creation records: who made an object, so `ls` and `gc` can tell its creator is gone
//! without trusting a bare PID.
//!
//! The kernel records a creator only for System V shared memory (`shm_cpid`). For the
//! other kinds, a program (ipcx's own `recv` and `relay`, or any program that wants
//! `ipcx gc` to clean up after it) writes one small JSON file per object into
//! `<runtime dir>/owners/`:
//!
//! ```text
//! {"kind":"sysv-msg","id":32769,"ctime":1732400000,"pid":4242,"start_time":981234}
//! {"kind":"shm","name":"/jobs","ino":1234,"pid":4242,"start_time":981234}
//! ```
//!
//! `pid` and `start_time` (field 22 of `/proc/<pid>/stat`, clock ticks after boot) name
//! one process for good; the object is matched by its id and `ctime` (System V) or name
//! and inode (files), so a record never applies to a later object that reused the id or
//! the name. The runtime directory is `$XDG_RUNTIME_DIR/ipcx`, else `/tmp/ipcx-<uid>`,
//! created 0700 and used only if it belongs to the caller.

use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One creation record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctime: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ino: Option<u64>,
    pub pid: u32,
    pub start_time: u64,
}

fn owners_dir() -> PathBuf {
    ipcx::runtime::runtime_dir().join("owners")
}

fn file_of(r: &Record) -> PathBuf {
    let what = match (&r.id, &r.name) {
        (Some(id), _) => id.to_string(),
        (None, Some(name)) => name.trim_start_matches('/').replace('/', "%2F"),
        (None, None) => "unknown".into(),
    };
    owners_dir().join(format!("{}.{what}.json", r.kind))
}

/// Writes the record; returns its path so the creator can remove it when done.
pub fn write(r: &Record) -> std::io::Result<PathBuf> {
    // The library's checks: created 0700 exactly, and used only if it is a real
    // directory of the caller's that group and others cannot enter.
    ipcx::runtime::ensure_runtime_dir()?;
    ipcx::runtime::ensure_private_dir(&owners_dir())?;
    let path = file_of(r);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    std::io::Write::write_all(
        &mut file,
        &serde_json::to_vec(r).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Every readable record of the calling user.
pub fn load_all() -> Vec<Record> {
    let Ok(dir) = std::fs::read_dir(owners_dir()) else {
        return Vec::new();
    };
    dir.flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
        .collect()
}

/// Removes the record of an object that is gone.
pub fn forget(r: &Record) {
    let _ = std::fs::remove_file(file_of(r));
}

/// The record for an object this process has just created: `kind` and either a System V
/// id (found by key in /proc/sysvipc) or a file path with its POSIX name.
pub fn for_me(kind: &str) -> Option<Record> {
    let me = ipcx::process::ProcessId::current().ok()?;
    Some(Record {
        kind: kind.into(),
        pid: me.pid(),
        start_time: me.start_time(),
        ..Record::default()
    })
}

/// The id and ctime of the System V object of `key` in table `path`.
pub fn sysv_by_key(path: &str, key: i32) -> Option<(i64, u64)> {
    let s = std::fs::read_to_string(path).ok()?;
    let mut lines = s.lines();
    let cols: Vec<&str> = lines.next()?.split_whitespace().collect();
    let at = |name: &str| cols.iter().position(|c| *c == name);
    let (k, id, ctime) = (at("key")?, at(cols[1])?, at("ctime")?);
    lines.find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.get(k)?.parse::<i64>().ok()? as i32 != key {
            return None;
        }
        Some((f.get(id)?.parse().ok()?, f.get(ctime)?.parse().ok()?))
    })
}

/// The record of what the receiver at `addr` created, written now; `None` for kinds
/// that need none (sockets are seen unbound) or when it cannot be written.
pub fn record_receiver(addr: &ipcx::addr::Address) -> Option<Record> {
    use ipcx::addr::Transport;
    let r = match addr.transport() {
        Transport::SysvMq => {
            let (id, ctime) = sysv_by_key("/proc/sysvipc/msg", addr.key()?.raw())?;
            let mut r = for_me("sysv-msg")?;
            r.id = Some(id);
            r.ctime = Some(ctime);
            r
        }
        Transport::Shm | Transport::Mq => {
            let name = addr.name()?.as_str().to_string();
            let (kind, path) = if addr.transport() == Transport::Shm {
                (
                    "shm",
                    PathBuf::from("/dev/shm").join(name.trim_start_matches('/')),
                )
            } else {
                (
                    "mq",
                    crate::inventory::mqueue_mount()?.join(name.trim_start_matches('/')),
                )
            };
            let mut r = for_me(kind)?;
            r.ino = Some(std::fs::metadata(path).ok()?.ino());
            r.name = Some(name);
            r
        }
        _ => return None,
    };
    write(&r).ok()?;
    Some(r)
}
