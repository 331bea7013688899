//! Every IPC object on the machine, its owner, and whether its creator is gone: what
//! `ipcx ls` prints and `ipcx gc` acts on.
//!
//! Liveness never rests on a bare PID (reliability item 5): a PID is taken for the
//! creator only together with something that proves it is the same process — the
//! process's start time compared with the object's creation time (System V shm), or the
//! PID and start time recorded at creation ([`crate::record`]) — and an object that
//! processes still use (attached, open or mapped, bound) is never stale.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

use serde::Serialize;

use crate::record::{self, Record};

mod mailbox;
mod ring;

pub use mailbox::{Refusal, lock_path, remove as remove_locked_socket};
pub use ring::in_use as ring_in_use;

/// One IPC object, as `ls` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct Object {
    /// sysv-shm, sysv-sem, sysv-msg, shm, sem, mq, socket, fifo, ring, mailbox.
    pub kind: &'static str,
    /// The key (System V), name (POSIX) or path.
    pub name: String,
    /// The System V id, or the socket's inode.
    pub id: Option<i64>,
    /// The owner's user name (or uid when it has none).
    pub owner: String,
    pub uid: u32,
    /// Permission bits, octal.
    pub mode: String,
    /// Bytes (shm), or bytes queued (queues).
    pub size: Option<u64>,
    /// Attached processes (sysv-shm), semaphores (sysv-sem), queued messages (queues),
    /// or processes holding it open or mapped (shm, sem, fifo).
    pub count: Option<u64>,
    /// What `count` counts.
    pub count_of: Option<&'static str>,
    /// The creator's pid where the kernel or an ipcx record knows it.
    pub creator_pid: Option<u32>,
    /// Whether that very process (pid and start time) still runs.
    pub creator_alive: Option<bool>,
    /// Whether the object is left over: its creator is gone and nothing uses it, or
    /// (when no creator is known) nothing uses it.
    pub stale: bool,
    /// `stale` rests on a known creator (the kernel's or an ipcx record), not only on
    /// the absence of users. `gc` removes only these unless --match names the object.
    pub sure: bool,
    /// Why it is (or is not) stale, in words.
    pub why: String,
    /// Unix socket type and state (socket), the state of each side (ring), or whether
    /// it is bound and its lock held (mailbox).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

impl Object {
    /// An object of `kind` named `name`, owned by `uid`, with nothing else known yet:
    /// not stale, no counts, no creator.
    pub fn new(kind: &'static str, name: String, uid: u32) -> Object {
        Object {
            kind,
            name,
            id: None,
            owner: String::new(),
            uid,
            mode: String::new(),
            size: None,
            count: None,
            count_of: None,
            creator_pid: None,
            creator_alive: None,
            stale: false,
            sure: false,
            why: String::new(),
            state: None,
        }
    }

    /// An object of `kind` named `name` that is a file (`/dev/shm`, the runtime
    /// directory): its owner and mode from `meta`, nothing else known yet.
    pub fn of_file(
        kind: &'static str,
        name: String,
        meta: &std::fs::Metadata,
        users: &Users,
    ) -> Object {
        Object {
            owner: users.name(meta.uid()),
            mode: mode_text(meta.mode()),
            ..Object::new(kind, name, meta.uid())
        }
    }
}

/// The inventory: objects, plus notes about what could not be looked at.
#[derive(Debug, Default, Serialize)]
pub struct Inventory {
    pub objects: Vec<Object>,
    pub notes: Vec<String>,
}

/// Where the mqueue filesystem is mounted, from /proc/self/mounts.
pub fn mqueue_mount() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_dev, dir, fstype) = (f.next()?, f.next()?, f.next()?);
        (fstype == "mqueue").then(|| PathBuf::from(unescape_mount(dir)))
    })
}

/// /proc/self/mounts writes spaces and such as octal escapes (`\040`).
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub const MQUEUE_NOTE: &str = "POSIX message queues: the mqueue filesystem is not mounted, so \
     queues cannot be listed; mount it with `mount -t mqueue none /dev/mqueue` (as root; \
     `mkdir -p /dev/mqueue` first)";

/// What is known about the processes of the machine, gathered once.
pub struct Procs {
    /// pid → (state, start time in clock ticks after boot).
    stat: HashMap<u32, (char, u64)>,
    /// (dev, ino) of every file some process holds open or mapped.
    in_use: HashMap<(u64, u64), u64>,
    boot_time: u64,
    ticks: u64,
}

impl Procs {
    pub fn scan() -> Procs {
        let mut stat = HashMap::new();
        let mut in_use: HashMap<(u64, u64), u64> = HashMap::new();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Procs::empty();
        };
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(info) = proc_stat(pid) {
                stat.insert(pid, info);
            }
            // One count per process, however many descriptors and mappings it has.
            let mut mine = HashSet::new();
            if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
                for fd in fds.flatten() {
                    if let Ok(m) = std::fs::metadata(fd.path()) {
                        mine.insert((m.dev(), m.ino()));
                    }
                }
            }
            if let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) {
                for line in maps.lines() {
                    // address perms offset dev inode path
                    let f: Vec<&str> = line.split_whitespace().collect();
                    if f.len() >= 6
                        && f[5].starts_with('/')
                        && let (Some(dev), Ok(ino)) = (parse_dev(f[3]), f[4].parse::<u64>())
                        && ino != 0
                    {
                        mine.insert((dev, ino));
                    }
                }
            }
            for k in mine {
                *in_use.entry(k).or_default() += 1;
            }
        }
        Procs {
            stat,
            in_use,
            boot_time: boot_time(),
            ticks: rustix::param::clock_ticks_per_second(),
        }
    }

    fn empty() -> Procs {
        Procs {
            stat: HashMap::new(),
            in_use: HashMap::new(),
            boot_time: 0,
            ticks: 100,
        }
    }

    /// The start time of `pid`, if it runs (a zombie has stopped running: it holds
    /// nothing and attaches to nothing).
    fn running(&self, pid: u32) -> Option<u64> {
        match self.stat.get(&pid) {
            Some(&(state, start)) if state != 'Z' && state != 'X' => Some(start),
            _ => None,
        }
    }

    /// Whether the process that created an object at `created` (seconds since the
    /// epoch) with pid `pid` still runs: some process holds the pid and started no
    /// later than the object was made. One that started after is a stranger that was
    /// given the recycled pid.
    fn creator_alive_since(&self, pid: u32, created: u64) -> bool {
        match self.running(pid) {
            None => false,
            // A second of slack: ctime has whole seconds, start times have ticks.
            Some(start) => self.boot_time + start / self.ticks.max(1) <= created + 1,
        }
    }

    /// Whether the process `r` recorded (pid and start time) still runs.
    fn recorded_alive(&self, r: &Record) -> bool {
        self.running(r.pid) == Some(r.start_time)
    }

    fn users_of(&self, dev: u64, ino: u64) -> u64 {
        self.in_use.get(&(dev, ino)).copied().unwrap_or(0)
    }
}

/// `/proc/<pid>/stat`: the state letter and start time (field 22).
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let state = f.first()?.chars().next()?;
    let start = f.get(19)?.parse().ok()?;
    Some((state, start))
}

fn boot_time() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// "08:01" (major:minor, hex) as the kernel's dev_t encoding that `stat` reports.
fn parse_dev(s: &str) -> Option<u64> {
    let (maj, min) = s.split_once(':')?;
    let (maj, min) = (
        u64::from_str_radix(maj, 16).ok()?,
        u64::from_str_radix(min, 16).ok()?,
    );
    Some(rustix::fs::makedev(maj as u32, min as u32))
}

/// User names from /etc/passwd.
pub struct Users(HashMap<u32, String>);

impl Users {
    pub fn load() -> Users {
        let mut map = HashMap::new();
        if let Ok(s) = std::fs::read_to_string("/etc/passwd") {
            for l in s.lines() {
                let f: Vec<&str> = l.split(':').collect();
                if f.len() > 2
                    && let Ok(uid) = f[2].parse()
                {
                    map.entry(uid).or_insert_with(|| f[0].to_string());
                }
            }
        }
        Users(map)
    }

    pub fn name(&self, uid: u32) -> String {
        self.0.get(&uid).cloned().unwrap_or_else(|| uid.to_string())
    }

    /// The uid of a user given by name or number.
    pub fn uid(&self, user: &str) -> Option<u32> {
        user.parse().ok().or_else(|| {
            self.0
                .iter()
                .find(|(_, n)| n.as_str() == user)
                .map(|(&u, _)| u)
        })
    }
}

/// A /proc/sysvipc table as rows of column name → value.
fn sysv_table(path: &str) -> Vec<HashMap<String, String>> {
    let Ok(s) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut lines = s.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let cols: Vec<&str> = header.split_whitespace().collect();
    lines
        .map(|l| {
            cols.iter()
                .zip(l.split_whitespace())
                .map(|(c, v)| (c.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// The permission bits: /proc/sysvipc prints them in octal.
fn perms(row: &HashMap<String, String>) -> u32 {
    row.get("perms")
        .and_then(|v| u32::from_str_radix(v, 8).ok())
        .unwrap_or(0)
}

fn num(row: &HashMap<String, String>, col: &str) -> u64 {
    row.get(col).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn key_text(row: &HashMap<String, String>) -> String {
    let key: i64 = row.get("key").and_then(|v| v.parse().ok()).unwrap_or(0);
    format!("{:#010x}", key as i32 as u32)
}

fn mode_text(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

/// Everything, gathered now.
pub fn gather(users: &Users) -> Inventory {
    let procs = Procs::scan();
    let records = record::load_all();
    let locks = Locks::scan();
    let mut inv = Inventory::default();
    sysv(&mut inv, users, &procs, &records);
    dev_shm(&mut inv, users, &procs, &records, &locks);
    mqueue(&mut inv, users, &procs, &records);
    sockets(&mut inv, users);
    runtime_dir(&mut inv, users, &procs, &records, &locks);
    // A bound mailbox is also a bound socket in /proc/net/unix: list it once, as a mailbox.
    let mailboxes: HashSet<String> = inv
        .objects
        .iter()
        .filter(|o| o.kind == "mailbox")
        .map(mailbox_path)
        .collect();
    inv.objects
        .retain(|o| o.kind != "socket" || !mailboxes.contains(&o.name));
    inv
}

/// The socket path of a mailbox object: its name is the path, or (in the runtime
/// directory itself) the bare mailbox name.
pub fn mailbox_path(o: &Object) -> String {
    if o.name.starts_with('/') {
        o.name.clone()
    } else {
        runtime_root().join(&o.name).display().to_string()
    }
}

/// The runtime directory as the kernel reports paths under it (symbolic links resolved,
/// as a mailbox resolves its directory before binding).
pub fn runtime_root() -> PathBuf {
    let dir = ipcx::runtime::runtime_dir();
    std::fs::canonicalize(&dir).unwrap_or(dir)
}

/// The file locks on the machine, from /proc/locks: which byte ranges of which files
/// some open file description holds. Reading it takes no lock, so listing never gets
/// in the way of a process that is taking one.
pub struct Locks(HashMap<(u64, u64), Vec<Range>>);

/// A locked byte range: its first byte, and its last (`None`: to the end of the file).
type Range = (u64, Option<u64>);

impl Locks {
    pub fn scan() -> Locks {
        let mut map: HashMap<(u64, u64), Vec<Range>> = HashMap::new();
        let text = std::fs::read_to_string("/proc/locks").unwrap_or_default();
        for line in text.lines() {
            // "1: OFDLCK ADVISORY  WRITE -1 00:1a:1234 0 0"; a waiter's line has "->"
            // after the number and holds nothing.
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 || f[1] == "->" {
                continue;
            }
            let mut dev = f[5].split(':');
            let (Some(maj), Some(min), Some(ino)) = (dev.next(), dev.next(), dev.next()) else {
                continue;
            };
            let (Some(dev), Ok(ino)) = (parse_dev(&format!("{maj}:{min}")), ino.parse::<u64>())
            else {
                continue;
            };
            let Ok(start) = f[6].parse::<u64>() else {
                continue;
            };
            // "EOF" (to the end of the file) is the only end that is not a number.
            let end = f[7].parse::<u64>().ok();
            map.entry((dev, ino)).or_default().push((start, end));
        }
        Locks(map)
    }

    /// Whether any lock covers the byte at `byte` of the file (`dev`, `ino`).
    pub fn held(&self, dev: u64, ino: u64, byte: u64) -> bool {
        self.0.get(&(dev, ino)).is_some_and(|ranges| {
            ranges
                .iter()
                .any(|&(start, end)| start <= byte && end.is_none_or(|e| byte <= e))
        })
    }

    /// Whether any lock is held on the file (`flock` locks cover all of it).
    pub fn any(&self, dev: u64, ino: u64) -> bool {
        self.0.contains_key(&(dev, ino))
    }
}

fn sysv(inv: &mut Inventory, users: &Users, procs: &Procs, records: &[Record]) {
    for row in sysv_table("/proc/sysvipc/shm") {
        let uid = num(&row, "uid") as u32;
        let (cpid, nattch, ctime) = (
            num(&row, "cpid") as u32,
            num(&row, "nattch"),
            num(&row, "ctime"),
        );
        let alive = procs.creator_alive_since(cpid, ctime);
        let (stale, why) = match (alive, nattch) {
            (true, _) => (false, format!("creator pid {cpid} runs")),
            (false, 0) => (
                true,
                format!(
                    "creator pid {cpid} is gone (no such process, or one started after the segment was made) and nothing is attached"
                ),
            ),
            (false, n) => (
                false,
                format!("creator pid {cpid} is gone but {n} processes are attached"),
            ),
        };
        inv.objects.push(Object {
            kind: "sysv-shm",
            name: key_text(&row),
            id: Some(num(&row, "shmid") as i64),
            owner: users.name(uid),
            uid,
            mode: mode_text(perms(&row)),
            size: Some(num(&row, "size")),
            count: Some(nattch),
            count_of: Some("attached"),
            creator_pid: Some(cpid),
            creator_alive: Some(alive),
            stale,
            sure: stale,
            why,
            state: None,
        });
    }
    for (kind, path, idcol, count_col, count_of) in [
        (
            "sysv-sem",
            "/proc/sysvipc/sem",
            "semid",
            "nsems",
            "semaphores",
        ),
        ("sysv-msg", "/proc/sysvipc/msg", "msqid", "qnum", "messages"),
    ] {
        for row in sysv_table(path) {
            let uid = num(&row, "uid") as u32;
            let id = num(&row, idcol) as i64;
            let rec = records.iter().find(|r| {
                r.kind == kind && r.id == Some(id) && r.ctime == Some(num(&row, "ctime"))
            });
            let mut obj = Object {
                kind,
                name: key_text(&row),
                id: Some(id),
                owner: users.name(uid),
                uid,
                mode: mode_text(perms(&row)),
                size: (kind == "sysv-msg").then(|| num(&row, "cbytes")),
                count: Some(num(&row, count_col)),
                count_of: Some(count_of),
                creator_pid: None,
                creator_alive: None,
                stale: false,
                sure: false,
                why: "the kernel records no creator pid for this kind, and ipcx has no record of its creator".into(),
                state: None,
            };
            if let Some(r) = rec {
                apply_record(&mut obj, r, procs, 0);
            }
            inv.objects.push(obj);
        }
    }
}

/// Decides staleness from an ipcx creation record: the recorded process (pid and start
/// time) is gone and `users` processes use the object.
fn apply_record(obj: &mut Object, r: &Record, procs: &Procs, users: u64) {
    let alive = procs.recorded_alive(r);
    obj.creator_pid = Some(r.pid);
    obj.creator_alive = Some(alive);
    (obj.stale, obj.why) = match (alive, users) {
        (true, _) => (false, format!("creator pid {} runs (ipcx record)", r.pid)),
        (false, 0) => (
            true,
            format!(
                "creator pid {} is gone (ipcx record: pid and start time) and nothing uses it",
                r.pid
            ),
        ),
        (false, n) => (
            false,
            format!("creator pid {} is gone but {n} processes use it", r.pid),
        ),
    };
    obj.sure = obj.stale;
}

/// A file-backed object (POSIX shm or semaphore, queue, FIFO): its creator from an ipcx
/// record if there is one, else stale when no process holds it open or mapped.
fn file_object(
    kind: &'static str,
    name: String,
    meta: &std::fs::Metadata,
    users: &Users,
    procs: &Procs,
    records: &[Record],
) -> Object {
    let using = procs.users_of(meta.dev(), meta.ino());
    let mut obj = Object {
        size: (kind != "fifo").then_some(meta.len()),
        count: Some(using),
        count_of: Some("users"),
        stale: using == 0,
        why: if using == 0 {
            "no process holds it open or mapped (its creator is not recorded)".into()
        } else {
            format!("{using} processes hold it open or mapped")
        },
        ..Object::of_file(kind, name.clone(), meta, users)
    };
    if let Some(r) = records
        .iter()
        .find(|r| r.kind == kind && r.name.as_deref() == Some(&name) && r.ino == Some(meta.ino()))
    {
        apply_record(&mut obj, r, procs, using);
    }
    obj
}

fn dev_shm(inv: &mut Inventory, users: &Users, procs: &Procs, records: &[Record], locks: &Locks) {
    let Ok(dir) = std::fs::read_dir("/dev/shm") else {
        inv.notes
            .push("POSIX shared memory: /dev/shm is not readable".into());
        return;
    };
    for e in dir.flatten() {
        let Ok(meta) = e.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let file = e.file_name().to_string_lossy().into_owned();
        let (kind, name) = match file.strip_prefix("sem.") {
            Some(sem) => ("sem", format!("/{sem}")),
            None => ("shm", format!("/{file}")),
        };
        if kind == "shm"
            && let Some(header) = ring::read_header(&e.path())
        {
            inv.objects
                .push(ring::object(name, &meta, header, users, procs, locks));
            continue;
        }
        inv.objects
            .push(file_object(kind, name, &meta, users, procs, records));
    }
}

fn mqueue(inv: &mut Inventory, users: &Users, procs: &Procs, records: &[Record]) {
    let Some(mount) = mqueue_mount() else {
        inv.notes.push(MQUEUE_NOTE.into());
        return;
    };
    let Ok(dir) = std::fs::read_dir(&mount) else {
        inv.notes.push(format!(
            "POSIX message queues: {} is not readable",
            mount.display()
        ));
        return;
    };
    for e in dir.flatten() {
        let Ok(meta) = e.metadata() else { continue };
        let name = format!("/{}", e.file_name().to_string_lossy());
        let mut obj = file_object("mq", name, &meta, users, procs, records);
        // The file reads "QSIZE:129 NOTIFY:0 SIGNO:0 NOTIFY_PID:0".
        obj.size = std::fs::read_to_string(e.path()).ok().and_then(|s| {
            s.split_whitespace()
                .find_map(|f| f.strip_prefix("QSIZE:")?.parse().ok())
        });
        inv.objects.push(obj);
    }
}

/// Bound Unix sockets from /proc/net/unix (unnamed ones, the ends of socketpairs and
/// accepted connections, are left out: they have no name to act on).
fn sockets(inv: &mut Inventory, users: &Users) {
    for s in unix_sockets() {
        let (uid, mode) = if s.path.starts_with('@') {
            (None, None)
        } else {
            std::fs::symlink_metadata(&s.path)
                .ok()
                .map_or((None, None), |m| (Some(m.uid()), Some(m.mode())))
        };
        inv.objects.push(Object {
            id: Some(s.inode as i64),
            owner: uid.map_or_else(|| "-".into(), |u| users.name(u)),
            mode: mode.map_or_else(|| "-".into(), mode_text),
            why: "a live socket is bound to this name".into(),
            state: Some(format!("{} {}", s.kind, s.state)),
            ..Object::new("socket", s.path.clone(), uid.unwrap_or(u32::MAX))
        });
    }
}

pub struct UnixSocket {
    pub path: String,
    pub inode: u64,
    pub kind: &'static str,
    pub state: &'static str,
}

pub fn unix_sockets() -> Vec<UnixSocket> {
    let Ok(s) = std::fs::read_to_string("/proc/net/unix") else {
        return Vec::new();
    };
    s.lines()
        .skip(1)
        .filter_map(|l| {
            // Num RefCount Protocol Flags Type St Inode [Path]
            let f: Vec<&str> = l.split_whitespace().collect();
            let path = f.get(7)?.to_string();
            let flags = u32::from_str_radix(f[3], 16).ok()?;
            let kind = match f[4] {
                "0001" => "stream",
                "0002" => "dgram",
                "0005" => "seqpacket",
                _ => "other",
            };
            let state = if flags & 0x0001_0000 != 0 {
                "listening"
            } else {
                match f[5] {
                    "01" => "unconnected",
                    "02" => "connecting",
                    "03" => "connected",
                    "04" => "disconnecting",
                    _ => "unknown",
                }
            };
            Some(UnixSocket {
                path,
                inode: f[6].parse().ok()?,
                kind,
                state,
            })
        })
        .collect()
}

/// FIFOs and socket files under the ipcx runtime directory. A socket file that no live
/// socket is bound to is stale for sure: nothing can ever accept on it again.
fn runtime_dir(
    inv: &mut Inventory,
    users: &Users,
    procs: &Procs,
    records: &[Record],
    locks: &Locks,
) {
    let root = runtime_root();
    let bound: HashMap<String, &'static str> = unix_sockets()
        .into_iter()
        .map(|s| (s.path, s.kind))
        .collect();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            let path = e.path();
            let name = path.display().to_string();
            let ft = meta.file_type();
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_fifo() {
                inv.objects
                    .push(file_object("fifo", name, &meta, users, procs, records));
            } else if ft.is_socket()
                && let Some(mailbox) = mailbox::object(&root, &path, &meta, &bound, users, locks)
            {
                inv.objects.push(mailbox);
            } else if ft.is_socket() && !bound.contains_key(&name) {
                inv.objects.push(Object {
                    stale: true,
                    sure: true,
                    why: "a socket file no live socket is bound to (its server is gone)".into(),
                    state: Some("unbound".into()),
                    ..Object::of_file("socket", name, &meta, users)
                });
            }
        }
    }
}
