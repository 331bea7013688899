//! `ipcx ls`, `ipcx rm` and `ipcx gc`: see every IPC object, remove one, or remove the
//! caller's stale ones.

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use clap::{Args, ValueEnum};

use crate::exit::{self, Failure, outln};
use crate::inventory::{self, Inventory, Object, Users};
use crate::record;

const STALE_RULE: &str = "\
WHEN AN OBJECT IS STALE:
  A PID alone never decides it: PIDs are reused. An object is stale when
  - sysv-shm: no running process has the creator pid (shm_cpid) and started before
    the segment was made (its ctime), and nothing is attached (nattch 0);
  - an object ipcx recorded (recv/relay write <runtime dir>/owners/*.json with the
    creator's pid AND start time): that very process has exited and no process holds
    the object open or mapped;
  - a socket file in the ipcx runtime directory that no live socket is bound to;
  - an ipcx ring (a POSIX shm object that starts with the magic IXRG) whose sides
    have closed, or died (a side that is open in the header but whose liveness lock,
    an open file description lock the kernel drops when its process ends, is free),
    and that no process holds open or mapped;
  - an ipcx mailbox (a datagram socket NAME with NAME.lock beside it in the runtime
    directory) whose lock nobody holds and to which no socket is bound.
  These are marked `yes`. Objects whose creator nobody recorded (POSIX shm and
  semaphores, queues, FIFOs, and rings no side ever claimed or whose header is not
  valid) are marked `yes?` when no process holds them open or mapped: their creator
  may simply have meant them to persist. Locks are read from /proc/locks; ls takes
  none. System V semaphore
  sets and message queues without a record are never marked: the kernel keeps no
  creator pid for them and cannot tell whether anyone uses them.
  Users are found in /proc/<pid>/fd and /proc/<pid>/maps; without root, processes
  of other users cannot be looked into, so an object only they use looks unused.";

/// What kinds of object ls, rm and gc know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// System V shared memory segment (/proc/sysvipc/shm).
    SysvShm,
    /// System V semaphore set (/proc/sysvipc/sem).
    SysvSem,
    /// System V message queue (/proc/sysvipc/msg).
    SysvMsg,
    /// POSIX shared memory object (/dev/shm).
    Shm,
    /// POSIX named semaphore (/dev/shm/sem.NAME).
    Sem,
    /// POSIX message queue (the mqueue filesystem).
    Mq,
    /// Unix socket bound to a path (/proc/net/unix), or a socket file under the ipcx
    /// runtime directory.
    Socket,
    /// FIFO under the ipcx runtime directory.
    Fifo,
    /// ipcx ring: a POSIX shared memory object with the ring header (magic IXRG).
    Ring,
    /// ipcx mailbox: a datagram socket with a NAME.lock beside it in the runtime
    /// directory.
    Mailbox,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::SysvShm => "sysv-shm",
            Kind::SysvSem => "sysv-sem",
            Kind::SysvMsg => "sysv-msg",
            Kind::Shm => "shm",
            Kind::Sem => "sem",
            Kind::Mq => "mq",
            Kind::Socket => "socket",
            Kind::Fifo => "fifo",
            Kind::Ring => "ring",
            Kind::Mailbox => "mailbox",
        }
    }
}

/// Lists every IPC object on the machine in one table.
///
/// System V shared memory, semaphore sets and message queues (/proc/sysvipc), POSIX
/// shared memory and named semaphores (/dev/shm), POSIX message queues (the mqueue
/// filesystem, where mounted), Unix sockets bound to a name (/proc/net/unix), FIFOs and
/// socket files under the ipcx runtime directory ($XDG_RUNTIME_DIR/ipcx, else
/// /tmp/ipcx-<uid>), ipcx rings (in /dev/shm) and ipcx mailboxes (in the runtime
/// directory). For each: owner, mode, size, how many attach, queue or use it, the
/// creator's pid where known and whether that process still runs (for rings and
/// mailboxes, whether their liveness locks are held), and whether the object is stale.
#[derive(Args, Debug)]
#[command(after_long_help = ls_after_help())]
pub struct LsArgs {
    /// Only objects of this kind (repeat for several).
    #[arg(long, short = 'k', value_enum)]
    pub kind: Vec<Kind>,
    /// Only objects owned by this user (name or uid).
    #[arg(long, short = 'u', value_name = "USER")]
    pub user: Option<String>,
    /// Only stale objects (see WHEN AN OBJECT IS STALE).
    #[arg(long, short = 's')]
    pub stale: bool,
    /// One JSON document: {"objects":[…],"notes":[…]}.
    #[arg(long)]
    pub json: bool,
}

/// Removes one IPC object of the caller's.
///
/// TARGET is the id (or the 0x key) of a System V object, the /name of a POSIX object or
/// ring, the name (or socket path) of a mailbox, or the path of a socket file or FIFO.
/// Objects of another user are refused (exit 4) even for root: remove those with the
/// owner's account. A ring or mailbox that is alive (a side's or the mailbox's
/// liveness lock is held, or a process holds it open or mapped) is refused too (exit
/// 4): stop its processes first. So is a socket bound by ipcx whose owner runs (it has
/// a NAME.lock beside it, held while it lives; rm removes the lock file with it). A System V shared memory segment that is still
/// attached disappears when the last process detaches.
#[derive(Args, Debug)]
#[command(after_long_help = rm_after_help())]
pub struct RmArgs {
    /// What kind of object TARGET is.
    #[arg(value_enum)]
    pub kind: Kind,
    /// Its id or key (System V), /name (POSIX, ring), name (mailbox) or path (socket,
    /// FIFO, mailbox).
    pub target: String,
}

/// Removes every stale object of the caller's.
///
/// Removes the objects that `ipcx ls --stale` marks `yes` (their creator is known to be
/// gone and nothing uses them) and that belong to the calling user. Objects marked
/// `yes?` (nothing uses them, creator unknown) are removed only when --match names
/// them. Never removes an object in use, or one of another user.
#[derive(Args, Debug)]
#[command(after_long_help = gc_after_help())]
pub struct GcArgs {
    /// Say what would be removed, remove nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Only objects whose name, key or path matches this glob (`*` and `?`; repeat for
    /// several); also admits the `yes?` objects it matches.
    #[arg(long = "match", short = 'm', value_name = "GLOB")]
    pub patterns: Vec<String>,
    /// Only objects of this kind (repeat for several).
    #[arg(long, short = 'k', value_enum)]
    pub kind: Vec<Kind>,
    /// The result as JSON: {"removed":[…],"failed":[…],"kept_other_users":N}.
    #[arg(long)]
    pub json: bool,
}

fn ls_after_help() -> String {
    format!(
        "COLUMNS:\n  KIND     sysv-shm sysv-sem sysv-msg shm sem mq socket fifo ring mailbox\n  \
         ID       System V id, or socket inode\n  SIZE     bytes; for a ring, its data area\n  \
         COUNT    attached (sysv-shm), semaphores (sysv-sem), messages (sysv-msg),\n           \
         processes holding it open or mapped (shm, sem, mq, fifo, ring),\n           and for a \
         ring each side: none, alive, dead (died without closing) or closed;\n           the \
         socket's type and state (socket), bound and lock held or free (mailbox)\n  CREATOR  pid \
         and whether that process runs (alive/gone), where known\n  STALE    yes, yes? or no \
         (below)\n\n{STALE_RULE}\n\nEXAMPLES:\n  ipcx ls\n  ipcx ls --kind sysv-shm --kind shm \
         --user alice\n  ipcx ls --kind ring --kind mailbox --stale\n  ipcx ls --stale --json | \
         jq '.objects[].name'\n\n{}",
        exit::HELP
    )
}

fn rm_after_help() -> String {
    format!(
        "EXAMPLES:\n  ipcx rm sysv-shm 32769\n  ipcx rm sysv-msg 0x4a4f4253\n  ipcx rm shm /jobs\n  \
         ipcx rm socket /run/user/1000/ipcx/app.sock\n  ipcx rm ring /frames\n  ipcx rm mailbox jobs\n\n{}",
        exit::HELP
    )
}

fn gc_after_help() -> String {
    format!(
        "EXAMPLES:\n  ipcx gc --dry-run\n  ipcx gc --match '/myapp-*'\n\n{STALE_RULE}\n\n{}",
        exit::HELP
    )
}

fn wanted(o: &Object, kinds: &[Kind]) -> bool {
    kinds.is_empty() || kinds.iter().any(|k| k.name() == o.kind)
}

fn stale_mark(o: &Object) -> &'static str {
    match (o.stale, o.sure) {
        (true, true) => "yes",
        (true, false) => "yes?",
        _ => "no",
    }
}

pub fn ls(args: LsArgs) -> Result<(), Failure> {
    let users = Users::load();
    let uid = match &args.user {
        Some(u) => Some(
            users
                .uid(u)
                .ok_or_else(|| Failure::usage(format!("no user `{u}` in /etc/passwd")))?,
        ),
        None => None,
    };
    let mut inv = inventory::gather(&users);
    inv.objects.retain(|o| {
        wanted(o, &args.kind) && uid.is_none_or(|u| o.uid == u) && (!args.stale || o.stale)
    });
    if args.json {
        let text = serde_json::to_string_pretty(&inv)
            .map_err(|e| Failure::new(exit::FAILED, format!("encode JSON: {e}")))?;
        outln!("{text}");
    } else {
        print_table(&inv);
    }
    Ok(())
}

fn print_table(inv: &Inventory) {
    let header = [
        "KIND", "ID", "OWNER", "MODE", "SIZE", "COUNT", "CREATOR", "STALE", "NAME",
    ];
    let rows: Vec<[String; 9]> = inv
        .objects
        .iter()
        .map(|o| {
            [
                o.kind.to_string(),
                o.id.map_or_else(|| "-".into(), |i| i.to_string()),
                o.owner.clone(),
                o.mode.clone(),
                o.size.map_or_else(|| "-".into(), |s| s.to_string()),
                match (o.count, o.count_of, &o.state) {
                    (Some(c), Some(of), Some(state)) => format!("{c} {of}; {state}"),
                    (Some(c), Some(of), None) => format!("{c} {of}"),
                    _ => o.state.clone().unwrap_or_else(|| "-".into()),
                },
                match (o.creator_pid, o.creator_alive) {
                    (Some(p), Some(true)) => format!("{p} alive"),
                    (Some(p), _) => format!("{p} gone"),
                    _ => "-".into(),
                },
                stale_mark(o).into(),
                o.name.clone(),
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = width[i]));
            }
        }
        outln!("{}", s.trim_end());
    };
    line(&header.map(String::from));
    for r in &rows {
        line(r);
    }
    if rows.is_empty() {
        outln!("(no objects)");
    }
    for note in &inv.notes {
        eprintln!("ipcx: note: {note}");
    }
}

/// Matches `*` (any run) and `?` (one character).
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

fn me() -> u32 {
    rustix::process::geteuid().as_raw()
}

fn refused(what: &str, uid: u32, users: &Users) -> Failure {
    Failure::new(
        exit::REFUSED,
        format!(
            "rm {what}: refused: it belongs to {} (uid {uid}), not to this user ({}, uid {}); \
             ipcx removes only the caller's objects: run it as the owner",
            users.name(uid),
            users.name(me()),
            me()
        ),
    )
}

pub fn rm(args: RmArgs) -> Result<(), Failure> {
    let users = Users::load();
    let inv = inventory::gather(&users);
    let obj = find(&inv, args.kind, &args.target)?;
    if obj.uid != me() {
        return Err(refused(
            &format!("{} {}", obj.kind, obj.name),
            obj.uid,
            &users,
        ));
    }
    remove(&obj)?;
    outln!("removed {} {}", obj.kind, obj.name);
    Ok(())
}

/// The object `kind` `target` names, from the inventory (so its owner is known).
fn find(inv: &Inventory, kind: Kind, target: &str) -> Result<Object, Failure> {
    let kind = kind.name();
    let key_or_id = |o: &Object| {
        if let Some(hex) = target.strip_prefix("0x") {
            u32::from_str_radix(hex, 16).is_ok_and(|k| o.name == format!("{k:#010x}"))
        } else {
            target.parse::<i64>().is_ok_and(|id| o.id == Some(id))
        }
    };
    let name = if matches!(kind, "shm" | "sem" | "mq" | "ring") && !target.starts_with('/') {
        format!("/{target}")
    } else {
        target.to_string()
    };
    inv.objects
        .iter()
        .find(|o| {
            o.kind == kind
                && if kind.starts_with("sysv-") {
                    key_or_id(o)
                } else if kind == "mailbox" {
                    o.name == name || inventory::mailbox_path(o) == name
                } else {
                    o.name == name
                }
        })
        .cloned()
        .or_else(|| {
            // A FIFO or socket file outside the runtime directory, named by its path.
            let meta = std::fs::symlink_metadata(target).ok()?;
            let ft = meta.file_type();
            ((kind == "fifo" && ft.is_fifo()) || (kind == "socket" && ft.is_socket())).then(|| {
                Object::new(
                    if kind == "fifo" { "fifo" } else { "socket" },
                    target.to_string(),
                    meta.uid(),
                )
            })
        })
        .ok_or_else(|| {
            let more = if kind == "mq" && inventory::mqueue_mount().is_none() {
                format!(" ({})", inventory::MQUEUE_NOTE)
            } else {
                String::new()
            };
            Failure::new(
                exit::FAILED,
                format!("rm {kind} {target}: not found: `ipcx ls --kind {kind}` lists what there is{more}"),
            )
        })
}

/// Removes `o` through the library, and forgets its creation record.
fn remove(o: &Object) -> Result<(), Failure> {
    use ipcx::mq::posix::MessageQueue;
    let id = o.id.unwrap_or(-1) as i32;
    match o.kind {
        "sysv-shm" => ipcx::shm::sysv::SysvShm::from_id(id)?.remove()?,
        "sysv-sem" => ipcx::sem::sysv::SemSet::from_id(id)?.remove()?,
        "sysv-msg" => ipcx::mq::sysv::SysvMq::from_id(id)?.remove()?,
        "shm" => ipcx::shm::posix::Shm::unlink(&o.name)?,
        "sem" => ipcx::sem::posix::NamedSemaphore::unlink(&o.name)?,
        "mq" => MessageQueue::unlink(&o.name)?,
        "ring" => {
            let path = std::path::Path::new("/dev/shm").join(o.name.trim_start_matches('/'));
            if let Some(why) = inventory::ring_in_use(&path) {
                return Err(in_use(o, &why));
            }
            ipcx::shm::posix::Shm::unlink(&o.name)?;
        }
        "mailbox" => remove_socket(o, &inventory::mailbox_path(o))?,
        "socket" if std::fs::symlink_metadata(inventory::lock_path(o.name.as_ref())).is_ok() => {
            remove_socket(o, &o.name)?;
        }
        _ => std::fs::remove_file(&o.name)
            .map_err(|e| Failure::new(exit::FAILED, format!("unlink {:?}: {e}", o.name)))?,
    }
    for r in record::load_all() {
        if r.kind == o.kind
            && (r.id.is_some() && r.id == o.id || r.name.as_deref() == Some(&o.name))
        {
            record::forget(&r);
        }
    }
    Ok(())
}

/// Refuses to remove `o`, which a live process uses.
fn in_use(o: &Object, why: &str) -> Failure {
    Failure::new(
        exit::REFUSED,
        format!(
            "rm {} {}: refused: it is in use: {why}; stop the processes that use it first \
             (`ipcx ls --kind {}` shows its state)",
            o.kind, o.name, o.kind
        ),
    )
}

/// Removes a socket file that has a `.lock` beside it (a mailbox, or a socket bound by
/// ipcx), and the lock file, under the lock.
fn remove_socket(o: &Object, path: &str) -> Result<(), Failure> {
    inventory::remove_locked_socket(std::path::Path::new(path)).map_err(|r| match r {
        inventory::Refusal::Live(why) => in_use(o, &why),
        inventory::Refusal::Failed(msg) => {
            Failure::new(exit::FAILED, format!("rm {} {}: {msg}", o.kind, o.name))
        }
    })
}

pub fn gc(args: GcArgs) -> Result<(), Failure> {
    let users = Users::load();
    let inv = inventory::gather(&users);
    let me = me();
    let mut removed = Vec::new();
    let mut failed = Vec::new();
    let mut others = 0usize;
    for o in inv
        .objects
        .iter()
        .filter(|o| o.stale && wanted(o, &args.kind))
    {
        let matched =
            (!args.patterns.is_empty()).then(|| args.patterns.iter().any(|p| glob(p, &o.name)));
        if matched == Some(false) || !(o.sure || matched == Some(true)) {
            continue;
        }
        if o.uid != me {
            others += 1;
            continue;
        }
        let verb = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        let result = if args.dry_run { Ok(()) } else { remove(o) };
        match result {
            Ok(()) => {
                if !args.json {
                    outln!("{verb} {} {}: {}", o.kind, o.name, o.why);
                }
                removed.push(o.clone());
            }
            // Taken into use since it was listed: it is not stale any more.
            Err(e) if e.code == exit::REFUSED => {
                eprintln!("ipcx: gc: kept {} {}: {}", o.kind, o.name, e.message);
            }
            Err(e) => {
                eprintln!("ipcx: gc: {} {}: {}", o.kind, o.name, e.message);
                failed.push(o.clone());
            }
        }
    }
    if args.json {
        let doc = serde_json::json!({
            "dry_run": args.dry_run,
            "removed": removed,
            "failed": failed,
            "kept_other_users": others,
        });
        outln!("{doc:#}");
    } else if removed.is_empty() && failed.is_empty() {
        outln!("nothing to remove");
    }
    if others > 0 {
        eprintln!(
            "ipcx: gc: kept {others} stale objects of other users (only their owners may remove them)"
        );
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(
            exit::FAILED,
            format!("gc: {} objects could not be removed", failed.len()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs() {
        assert!(glob("/ipcx-*", "/ipcx-a-1"));
        assert!(glob("*", ""));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob("*x*y", "axxby"));
        assert!(!glob("/ipcx-*", "/other"));
    }
}
