//! `ipcx ls`, `rm` and `gc` across real processes: objects of a creator killed with
//! SIGKILL are listed stale and collected, live objects and objects of another user
//! are kept (reliability items 5 and 6), and what cannot be listed says why.
//!
//! Every `gc` here is narrowed with --match to the test's own names, so that running the
//! suite never removes anything else on the machine. Each test has its own runtime
//! directory (XDG_RUNTIME_DIR), where creation records live.
#![allow(clippy::unwrap_used)] // a failed unwrap is how a test reports failure

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Guard, Running, TempDir, stderr, stdout, unique_key, unique_name};
use ipcx::sysv::Key;
use serde_json::Value;

const ROLE: &str = "IPCX_CLI_TEST_ROLE";

/// `ipcx ARGS` with `runtime` as XDG_RUNTIME_DIR.
fn ipcx(runtime: &TempDir, args: &[&str]) -> std::process::Output {
    common::ipcx()
        .args(args)
        .env("XDG_RUNTIME_DIR", &runtime.0)
        .output()
        .unwrap()
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", stdout(out), stderr(out)))
}

/// The objects of `ls --json` output whose name is one of `names`.
fn ours<'a>(doc: &'a Value, names: &[String]) -> Vec<&'a Value> {
    doc["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| names.iter().any(|n| o["name"] == n.as_str()))
        .collect()
}

fn key_text(key: i32) -> String {
    format!("{:#010x}", key as u32)
}

/// Writes a creation record in the documented format (what any program does so that
/// `ipcx gc` can tell its creator is gone).
fn write_record(runtime: &std::path::Path, kind: &str, table: &str, key: i32) {
    let text = std::fs::read_to_string(table).unwrap();
    let mut lines = text.lines();
    let cols: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let at = |c: &str| cols.iter().position(|x| *x == c).unwrap();
    let row: Vec<&str> = lines
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f[at("key")].parse::<i64>().unwrap() as i32 == key)
        .unwrap();
    let me = ipcx::process::ProcessId::current().unwrap();
    let dir = runtime.join("ipcx/owners");
    std::fs::create_dir_all(&dir).unwrap();
    for d in [runtime.join("ipcx"), dir.clone()] {
        std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    }
    let record = serde_json::json!({
        "kind": kind,
        "id": row[1].parse::<i64>().unwrap(),
        "ctime": row[at("ctime")].parse::<u64>().unwrap(),
        "pid": me.pid(),
        "start_time": me.start_time(),
    });
    std::fs::write(
        dir.join(format!("{kind}.{}.json", row[1])),
        record.to_string(),
    )
    .unwrap();
}

/// The child role: creates a System V segment, set and queue (with creation records for
/// the set and the queue, whose creator the kernel does not keep) and a POSIX shm
/// object, keeps them, says "ready" and waits to be killed.
fn creator_role() -> ! {
    let var = |k: &str| std::env::var(k).unwrap();
    let runtime = std::path::PathBuf::from(var("XDG_RUNTIME_DIR"));
    let (shm_key, sem_key, msg_key): (i32, i32, i32) = (
        var("SHM_KEY").parse().unwrap(),
        var("SEM_KEY").parse().unwrap(),
        var("MSG_KEY").parse().unwrap(),
    );
    let mut shm = ipcx::shm::sysv::SysvShmOptions::new()
        .size(4096)
        .create(Key::new(shm_key))
        .unwrap();
    shm.keep();
    let mut sem = ipcx::sem::sysv::SemSetOptions::new()
        .count(2)
        .create(Key::new(sem_key))
        .unwrap();
    sem.keep();
    write_record(&runtime, "sysv-sem", "/proc/sysvipc/sem", sem_key);
    let mut msg = ipcx::mq::sysv::SysvMq::create(Key::new(msg_key)).unwrap();
    msg.keep();
    write_record(&runtime, "sysv-msg", "/proc/sysvipc/msg", msg_key);
    let mut posix = ipcx::shm::posix::ShmOptions::new()
        .size(4096)
        .create(&var("SHM_NAME"))
        .unwrap();
    posix.keep();
    println!("ready");
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// Removes whatever the creator made, whatever the test did.
fn remove_all(shm_key: i32, sem_key: i32, msg_key: i32, name: &str) {
    let _ = ipcx::shm::sysv::SysvShm::remove_key(Key::new(shm_key));
    let _ = ipcx::sem::sysv::SemSet::remove_key(Key::new(sem_key));
    let _ = ipcx::mq::sysv::SysvMq::remove_key(Key::new(msg_key));
    let _ = ipcx::shm::posix::Shm::unlink(name);
}

#[test]
fn objects_of_a_killed_creator_are_stale_and_collected() {
    if std::env::var_os(ROLE).is_some() {
        creator_role();
    }
    let runtime = TempDir::new("rt-killed");
    let (shm_key, sem_key, msg_key) = (unique_key(), unique_key(), unique_key());
    let name = unique_name("killed");
    let _cleanup = Guard(|| remove_all(shm_key, sem_key, msg_key, &name));
    // A live object of this (running) process: never stale, never collected.
    let live_key = unique_key();
    let live = ipcx::shm::sysv::SysvShmOptions::new()
        .size(4096)
        .create(Key::new(live_key))
        .unwrap();

    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "objects_of_a_killed_creator_are_stale_and_collected",
        "--exact",
        "--nocapture",
    ])
    .env(ROLE, "creator")
    .env("XDG_RUNTIME_DIR", &runtime.0)
    .env("SHM_KEY", shm_key.to_string())
    .env("SEM_KEY", sem_key.to_string())
    .env("MSG_KEY", msg_key.to_string())
    .env("SHM_NAME", &name)
    .stdout(Stdio::piped());
    let mut child = Running::spawn(cmd);
    let mut out = BufReader::new(child.child().stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("ready") {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the creator died early"
        );
    }
    let pid = child.pid();
    let names = [
        key_text(shm_key),
        key_text(sem_key),
        key_text(msg_key),
        name.clone(),
    ];

    // While the creator runs, nothing of it is stale.
    let doc = json(&ipcx(&runtime, &["ls", "--json"]));
    let objs = ours(&doc, &names);
    assert_eq!(objs.len(), 4, "{doc:#}");
    for o in &objs {
        assert_eq!(o["stale"], false, "{o:#}");
    }
    let seg = objs.iter().find(|o| o["kind"] == "sysv-shm").unwrap();
    assert_eq!(seg["creator_pid"], pid);
    assert_eq!(seg["creator_alive"], true);

    // SIGKILL: no destructor runs, everything stays behind.
    child.child().kill().unwrap();
    child.child().wait().unwrap();

    let doc = json(&ipcx(&runtime, &["ls", "--stale", "--json"]));
    let objs = ours(&doc, &names);
    assert_eq!(objs.len(), 4, "all four are stale: {doc:#}");
    for o in &objs {
        assert_eq!(o["stale"], true, "{o:#}");
        let sure = o["kind"] != "shm"; // POSIX shm: no creator recorded, only unused
        assert_eq!(o["sure"], sure, "{o:#}");
        if sure {
            assert_eq!(o["creator_pid"], pid, "{o:#}");
            assert_eq!(o["creator_alive"], false, "{o:#}");
        }
    }
    assert!(
        ours(&doc, &[key_text(live_key)]).is_empty(),
        "a live object is not stale: {doc:#}"
    );

    // The table says the same.
    let table = stdout(&ipcx(&runtime, &["ls", "--stale", "--kind", "sysv-shm"]));
    let row = table
        .lines()
        .find(|l| l.ends_with(&key_text(shm_key)))
        .unwrap();
    assert!(
        row.contains(&format!("{pid} gone")) && row.contains(" yes "),
        "{table}"
    );

    // A dry run removes nothing. Every gc in these tests names exactly its own objects:
    // a wider glob would collect what concurrent tests have just made.
    let mut matching = vec!["gc", "--json"];
    for n in &names {
        matching.extend(["--match", n.as_str()]);
    }
    let mut dry_args = matching.clone();
    dry_args.push("--dry-run");
    let dry = ipcx(&runtime, &dry_args);
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert_eq!(
        json(&dry)["removed"].as_array().unwrap().len(),
        4,
        "{}",
        stdout(&dry)
    );
    assert_eq!(
        ours(&json(&ipcx(&runtime, &["ls", "--json"])), &names).len(),
        4
    );

    // gc removes the four and keeps the live one.
    let gc = ipcx(&runtime, &matching);
    assert!(gc.status.success(), "{}", stderr(&gc));
    let doc = json(&ipcx(&runtime, &["ls", "--json"]));
    assert!(ours(&doc, &names).is_empty(), "{doc:#}");
    assert_eq!(ours(&doc, &[key_text(live_key)]).len(), 1);
    assert!(live.stat().is_ok());
    // The records went with the objects.
    let left: Vec<_> = std::fs::read_dir(runtime.0.join("ipcx/owners"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // A restarted program can create its objects again (reliability item 6).
    let again = ipcx::shm::sysv::SysvShmOptions::new()
        .size(4096)
        .create(Key::new(shm_key))
        .unwrap();
    drop(again);
}

/// `ipcx recv` records what it creates: killed with SIGKILL, its queue is stale for
/// sure (pid and start time recorded), gc removes it, and a new receiver can take the
/// key again.
#[test]
fn a_killed_ipcx_receiver_leaves_a_recorded_stale_queue() {
    let runtime = TempDir::new("rt-recv");
    let key = unique_key();
    let _cleanup = Guard(|| {
        let _ = ipcx::mq::sysv::SysvMq::remove_key(Key::new(key));
    });
    let addr = format!("sysv-mq:{key:#x}");
    let mut cmd = common::ipcx();
    cmd.args(["recv", &addr]).env("XDG_RUNTIME_DIR", &runtime.0);
    let mut recv = Running::spawn(cmd);
    let owners = runtime.0.join("ipcx/owners");
    common::wait_until("the creation record", || {
        std::fs::read_dir(&owners).is_ok_and(|mut d| d.next().is_some())
    });
    let pid = recv.pid();
    recv.child().kill().unwrap();
    recv.child().wait().unwrap();

    let doc = json(&ipcx(
        &runtime,
        &["ls", "--stale", "--json", "--kind", "sysv-msg"],
    ));
    let objs = ours(&doc, &[key_text(key)]);
    assert_eq!(objs.len(), 1, "{doc:#}");
    assert_eq!(objs[0]["sure"], true);
    assert_eq!(objs[0]["creator_pid"], pid);

    let gc = ipcx(&runtime, &["gc", "--match", &key_text(key)]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    assert!(
        stdout(&gc).contains(&format!("removed sysv-msg {}", key_text(key))),
        "{}",
        stdout(&gc)
    );

    // The key is free again: a new receiver creates its queue, and is removed by SIGTERM.
    let mut cmd = common::ipcx();
    cmd.args(["recv", &addr, "--count", "1", "--timeout", "20s"])
        .env("XDG_RUNTIME_DIR", &runtime.0)
        .stdout(Stdio::piped());
    let recv = Running::spawn(cmd);
    let sent = ipcx(&runtime, &["send", &addr, "again", "--timeout", "20s"]);
    assert!(sent.status.success(), "{}", stderr(&sent));
    let got = recv.finish(Duration::from_secs(30));
    assert!(got.status.success(), "{}", stderr(&got));
    assert_eq!(stdout(&got), "again\n");
}

#[test]
fn rm_removes_one_object_by_id_key_or_name() {
    let runtime = TempDir::new("rt-rm");
    let (shm_key, msg_key) = (unique_key(), unique_key());
    let name = unique_name("rm");
    let _cleanup = Guard(|| remove_all(shm_key, 0, msg_key, &name));
    let mut seg = ipcx::shm::sysv::SysvShmOptions::new()
        .size(4096)
        .create(Key::new(shm_key))
        .unwrap();
    seg.keep();
    let id = seg.id().to_string();
    ipcx::mq::sysv::SysvMq::create(Key::new(msg_key))
        .unwrap()
        .keep();
    ipcx::shm::posix::ShmOptions::new()
        .size(64)
        .create(&name)
        .unwrap()
        .keep();

    for args in [
        ["rm", "sysv-shm", id.as_str()],
        ["rm", "sysv-msg", &key_text(msg_key)],
        ["rm", "shm", &name],
    ] {
        let out = ipcx(&runtime, &args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).starts_with("removed "), "{}", stdout(&out));
    }
    assert_eq!(
        ipcx::shm::sysv::SysvShm::from_id(seg.id())
            .unwrap_err()
            .kind(),
        ipcx::ErrorKind::NotFound
    );
    assert_eq!(
        ipcx::shm::posix::ShmOptions::new()
            .open(&name)
            .unwrap_err()
            .kind(),
        ipcx::ErrorKind::NotFound
    );

    let out = ipcx(&runtime, &["rm", "shm", &name]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not found") && stderr(&out).contains("ipcx ls --kind shm"));
    let out = ipcx(&runtime, &["rm", "bogus", "x"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Objects of another user are refused by rm (exit 4) and kept by gc, even when they
/// are stale and even for root. Making a foreign object needs root (chown); without it
/// the test says so and checks only what it can.
#[test]
fn objects_of_another_user_are_refused_and_kept() {
    let runtime = TempDir::new("rt-foreign");
    let name = unique_name("foreign");
    let _cleanup = Guard(|| {
        let _ = ipcx::shm::posix::Shm::unlink(&name);
    });
    ipcx::shm::posix::ShmOptions::new()
        .size(64)
        .create(&name)
        .unwrap()
        .keep();
    let path = format!("/dev/shm{name}");
    if !rustix::process::geteuid().is_root() {
        println!("SKIPPED (part): not root, so no object of another user can be made here");
        return;
    }
    let nobody = 65534;
    std::os::unix::fs::chown(&path, Some(nobody), Some(nobody)).unwrap();

    let out = ipcx(&runtime, &["rm", "shm", &name]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let msg = stderr(&out);
    assert!(
        msg.contains("refused") && msg.contains("uid 65534"),
        "{msg}"
    );
    assert!(std::path::Path::new(&path).exists());

    // Stale (nobody uses it) and matched, yet kept: it is not ours.
    let doc = json(&ipcx(
        &runtime,
        &["ls", "--stale", "--json", "--user", "65534"],
    ));
    assert_eq!(ours(&doc, std::slice::from_ref(&name)).len(), 1, "{doc:#}");
    let gc = ipcx(&runtime, &["gc", "--json", "--match", &name]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    assert_eq!(json(&gc)["kept_other_users"], 1);
    assert!(json(&gc)["removed"].as_array().unwrap().is_empty());
    assert!(std::path::Path::new(&path).exists());
}

/// A socket file whose server is gone is stale for sure: no socket is bound to it.
#[test]
fn an_unbound_socket_file_in_the_runtime_directory_is_stale() {
    let runtime = TempDir::new("rt-sock");
    let dir = runtime.0.join("ipcx");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("server.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let p = path.display().to_string();
    let doc = json(&ipcx(&runtime, &["ls", "--json", "--kind", "socket"]));
    let live = ours(&doc, std::slice::from_ref(&p));
    assert_eq!(live.len(), 1, "{doc:#}");
    assert_eq!(live[0]["stale"], false);
    assert_eq!(live[0]["state"], "stream listening");
    drop(listener); // std leaves the file behind, as a crashed server does

    let doc = json(&ipcx(
        &runtime,
        &["ls", "--stale", "--json", "--kind", "socket"],
    ));
    assert_eq!(
        ours(&doc, std::slice::from_ref(&p))[0]["sure"],
        true,
        "{doc:#}"
    );
    let gc = ipcx(&runtime, &["gc", "--match", &p]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    assert!(!path.exists());
}

#[test]
fn an_unmounted_mqueue_filesystem_is_explained() {
    let runtime = TempDir::new("rt-mq");
    let mounted = std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split_whitespace().nth(2) == Some("mqueue"));
    let out = ipcx(&runtime, &["ls", "--kind", "mq"]);
    assert!(out.status.success());
    if mounted {
        println!("SKIPPED (part): the mqueue filesystem is mounted here");
        assert!(!stderr(&out).contains("not mounted"));
        return;
    }
    assert!(
        stderr(&out).contains("mount -t mqueue none /dev/mqueue"),
        "{}",
        stderr(&out)
    );
    let doc = json(&ipcx(&runtime, &["ls", "--json"]));
    assert!(
        doc["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("mount -t mqueue")),
        "{doc:#}"
    );
}

#[test]
fn help_explains_the_stale_rule_and_exit_codes() {
    for cmd in ["ls", "gc"] {
        let out = common::run(&[cmd, "--help"]);
        let text = stdout(&out);
        assert!(text.contains("PIDs are reused"), "{text}");
        assert!(text.contains("EXIT STATUS:"), "{text}");
    }
    assert!(stdout(&common::run(&["rm", "--help"])).contains("4  refused"));
}

/// The child role of the ring and mailbox tests: creates a named ring and becomes its
/// sender (holding the sender's liveness lock), binds a mailbox in the runtime directory
/// (holding its lock), says "ready" and waits to be killed.
fn ring_mailbox_role() -> ! {
    let var = |k: &str| std::env::var(k).unwrap();
    let _tx = ipcx::ring::RingOptions::new()
        .capacity(4096)
        .create_named(&var("RING_NAME"))
        .unwrap()
        .sender()
        .unwrap();
    let _mailbox = ipcx::mailbox::Mailbox::bind(&var("MAILBOX_NAME")).unwrap();
    println!("ready");
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// A mailbox name no other test uses at the same time.
fn mailbox_name(what: &str) -> String {
    unique_name(what).trim_start_matches('/').to_string()
}

/// The runtime directory's `ipcx` directory, made 0700 as the library wants it.
fn private_runtime(runtime: &TempDir) -> std::path::PathBuf {
    let dir = runtime.0.join("ipcx");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    dir
}

/// A ring and a mailbox whose process was killed with SIGKILL are stale for sure (their
/// liveness locks are free: no PID involved), `gc` removes them (the shm object, the
/// socket and its lock file), and a live ring and mailbox beside them are kept
/// (reliability items 5 and 6).
#[test]
fn a_ring_and_a_mailbox_of_a_killed_process_are_stale_and_collected() {
    if std::env::var(ROLE).as_deref() == Ok("ring-mailbox") {
        ring_mailbox_role();
    }
    let runtime = TempDir::new("rt-ring");
    let dir = private_runtime(&runtime);
    let (ring, live_ring) = (unique_name("ring"), unique_name("ring-live"));
    let (mbox, live_mbox) = (mailbox_name("mbox"), mailbox_name("mbox-live"));
    let _cleanup = Guard(|| {
        let _ = ipcx::shm::posix::Shm::unlink(&ring);
    });
    // Live: this process holds the live ring's receiver and the live mailbox.
    let _rx = ipcx::ring::RingOptions::new()
        .capacity(4096)
        .create_named(&live_ring)
        .unwrap()
        .receiver()
        .unwrap();
    let _live = ipcx::mailbox::MailboxOptions::new()
        .dir(&dir)
        .bind(&live_mbox)
        .unwrap();

    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "a_ring_and_a_mailbox_of_a_killed_process_are_stale_and_collected",
        "--exact",
        "--nocapture",
    ])
    .env(ROLE, "ring-mailbox")
    .env("XDG_RUNTIME_DIR", &runtime.0)
    .env("RING_NAME", &ring)
    .env("MAILBOX_NAME", &mbox)
    .stdout(Stdio::piped());
    let mut child = Running::spawn(cmd);
    let mut out = BufReader::new(child.child().stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("ready") {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the creator died early"
        );
    }
    let names = [ring.clone(), mbox.clone()];
    let live_names = [live_ring.clone(), live_mbox.clone()];

    // While the process runs, its ring and mailbox are alive.
    let doc = json(&ipcx(
        &runtime,
        &["ls", "--json", "--kind", "ring", "--kind", "mailbox"],
    ));
    let objs = ours(&doc, &names);
    assert_eq!(objs.len(), 2, "{doc:#}");
    for o in &objs {
        assert_eq!(o["stale"], false, "{o:#}");
    }
    let r = objs.iter().find(|o| o["kind"] == "ring").unwrap();
    assert_eq!(r["state"], "sender alive, receiver none", "{r:#}");
    assert_eq!(r["size"], 4096, "{r:#}");
    let m = objs.iter().find(|o| o["kind"] == "mailbox").unwrap();
    assert_eq!(m["state"], "bound, lock held", "{m:#}");
    // A bound mailbox is listed once, as a mailbox, not again as a socket.
    let socket = dir.join(&mbox).display().to_string();
    assert!(
        ours(&doc, std::slice::from_ref(&socket)).is_empty(),
        "{doc:#}"
    );
    let all = json(&ipcx(&runtime, &["ls", "--json", "--kind", "socket"]));
    assert!(
        ours(&all, std::slice::from_ref(&socket)).is_empty(),
        "{all:#}"
    );

    child.child().kill().unwrap();
    child.child().wait().unwrap();

    let doc = json(&ipcx(
        &runtime,
        &[
            "ls", "--stale", "--json", "--kind", "ring", "--kind", "mailbox",
        ],
    ));
    let objs = ours(&doc, &names);
    assert_eq!(objs.len(), 2, "both are stale: {doc:#}");
    for o in &objs {
        assert_eq!(
            (&o["stale"], &o["sure"]),
            (&Value::Bool(true), &Value::Bool(true)),
            "{o:#}"
        );
    }
    let r = objs.iter().find(|o| o["kind"] == "ring").unwrap();
    assert_eq!(r["state"], "sender dead, receiver none", "{r:#}");
    assert!(
        r["why"].as_str().unwrap().contains("died without closing"),
        "{r:#}"
    );
    let m = objs.iter().find(|o| o["kind"] == "mailbox").unwrap();
    assert_eq!(m["state"], "unbound, lock free", "{m:#}");
    assert!(
        ours(&doc, &live_names).is_empty(),
        "live ones are not stale: {doc:#}"
    );

    // The table shows the kinds and the sides.
    let table = stdout(&ipcx(
        &runtime,
        &["ls", "--kind", "ring", "--kind", "mailbox"],
    ));
    let row = table.lines().find(|l| l.ends_with(&ring)).unwrap();
    assert!(
        row.starts_with("ring ")
            && row.contains("sender dead, receiver none")
            && row.contains(" yes "),
        "{table}"
    );
    let row = table.lines().find(|l| l.ends_with(&mbox)).unwrap();
    assert!(
        row.starts_with("mailbox ") && row.contains(" yes "),
        "{table}"
    );

    // gc (narrowed to this test's names, see the top of the file) removes the two and
    // keeps the live ones.
    let mut args = vec!["gc", "--json"];
    for n in names.iter().chain(&live_names) {
        args.extend(["--match", n.as_str()]);
    }
    let gc = ipcx(&runtime, &args);
    assert!(gc.status.success(), "{}", stderr(&gc));
    let removed = json(&gc)["removed"].as_array().unwrap().clone();
    assert_eq!(removed.len(), 2, "{removed:?}");
    assert!(!std::path::Path::new(&format!("/dev/shm{ring}")).exists());
    assert!(!dir.join(&mbox).exists());
    assert!(!dir.join(format!("{mbox}.lock")).exists());
    let doc = json(&ipcx(&runtime, &["ls", "--json"]));
    assert!(ours(&doc, &names).is_empty(), "{doc:#}");
    assert_eq!(ours(&doc, &live_names).len(), 2, "{doc:#}");

    // Both names can be taken again (reliability item 6).
    drop(
        ipcx::ring::RingOptions::new()
            .capacity(4096)
            .create_named(&ring)
            .unwrap(),
    );
    drop(
        ipcx::mailbox::MailboxOptions::new()
            .dir(&dir)
            .bind(&mbox)
            .unwrap(),
    );
}

/// `rm ring` and `rm mailbox` refuse one in use (exit 4, saying why and what to do) and
/// one of another user (exit 4, naming the owner; checked as root only, since making one
/// needs chown), and remove a stale one.
#[test]
fn rm_refuses_a_live_ring_or_mailbox_and_another_users() {
    let runtime = TempDir::new("rt-rm-ring");
    let dir = private_runtime(&runtime);
    let (live, closed, foreign) = (
        unique_name("ring-rm-live"),
        unique_name("ring-rm-closed"),
        unique_name("ring-rm-foreign"),
    );
    let mbox = mailbox_name("mbox-rm");
    let _cleanup = Guard(|| {
        for n in [&live, &closed, &foreign] {
            let _ = ipcx::shm::posix::Shm::unlink(n);
        }
    });
    let _rx = ipcx::ring::RingOptions::new()
        .capacity(4096)
        .create_named(&live)
        .unwrap()
        .receiver()
        .unwrap();
    let out = ipcx(&runtime, &["rm", "ring", &live]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let msg = stderr(&out);
    assert!(
        msg.contains(&format!("rm ring {live}: refused: it is in use"))
            && msg.contains("liveness lock is held")
            && msg.contains("stop the processes"),
        "{msg}"
    );
    assert!(std::path::Path::new(&format!("/dev/shm{live}")).exists());

    let mailbox = ipcx::mailbox::MailboxOptions::new()
        .dir(&dir)
        .bind(&mbox)
        .unwrap();
    let out = ipcx(&runtime, &["rm", "mailbox", &mbox]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
    assert!(dir.join(&mbox).exists());
    drop(mailbox);

    // Kept, then closed by its one side: stale, and rm removes it.
    let mut ring = ipcx::ring::RingOptions::new()
        .capacity(4096)
        .create_named(&closed)
        .unwrap();
    ring.keep();
    drop(ring.sender().unwrap());
    let doc = json(&ipcx(&runtime, &["ls", "--json", "--kind", "ring"]));
    let o = ours(&doc, std::slice::from_ref(&closed));
    assert_eq!(o[0]["state"], "sender closed, receiver none", "{doc:#}");
    assert_eq!(o[0]["sure"], true, "{doc:#}");
    let out = ipcx(&runtime, &["rm", "ring", &closed]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("removed ring {closed}\n"));
    assert!(!std::path::Path::new(&format!("/dev/shm{closed}")).exists());

    if !rustix::process::geteuid().is_root() {
        println!("SKIPPED (part): not root, so no ring of another user can be made here");
        return;
    }
    let mut ring = ipcx::ring::RingOptions::new()
        .capacity(4096)
        .create_named(&foreign)
        .unwrap();
    ring.keep();
    drop(ring.sender().unwrap());
    let path = format!("/dev/shm{foreign}");
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    let out = ipcx(&runtime, &["rm", "ring", &foreign]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let msg = stderr(&out);
    assert!(
        msg.contains("refused") && msg.contains("uid 65534"),
        "{msg}"
    );
    // Stale and matched, yet kept by gc: it is not ours.
    let gc = ipcx(&runtime, &["gc", "--json", "--match", &foreign]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    assert_eq!(json(&gc)["kept_other_users"], 1, "{}", stdout(&gc));
    assert!(std::path::Path::new(&path).exists());
}

/// A shared memory object that starts with the ring magic but whose header is wrong is
/// listed as a ring with a corrupt header, saying what is wrong, and never as stale for
/// sure: nothing in it is trusted (reliability items 8 and 9).
#[test]
fn a_ring_with_a_corrupt_header_is_listed_as_such_and_not_trusted() {
    let runtime = TempDir::new("rt-corrupt");
    let (version, capacity, state) = (
        unique_name("ring-bad-version"),
        unique_name("ring-bad-capacity"),
        unique_name("ring-bad-state"),
    );
    let _cleanup = Guard(|| {
        for n in [&version, &capacity, &state] {
            let _ = ipcx::shm::posix::Shm::unlink(n);
        }
    });
    let header = |version: u32, capacity: u64, sender: u32| {
        let mut h = Vec::new();
        h.extend_from_slice(b"IXRG");
        h.extend_from_slice(&version.to_ne_bytes());
        h.extend_from_slice(&512u32.to_ne_bytes());
        h.extend_from_slice(&0u32.to_ne_bytes());
        h.extend_from_slice(&capacity.to_ne_bytes());
        h.extend_from_slice(&sender.to_ne_bytes());
        h.extend_from_slice(&0u32.to_ne_bytes());
        h.resize(4096, 0);
        h
    };
    for (name, bytes) in [
        (&version, header(9, 1024, 0)),
        (&capacity, header(1, 1 << 40, 0)),
        (&state, header(1, 1024, 7)),
    ] {
        ipcx::shm::posix::ShmOptions::new()
            .size(4096)
            .create(name)
            .unwrap()
            .keep();
        std::fs::write(format!("/dev/shm{name}"), bytes).unwrap();
    }
    let names = [version.clone(), capacity.clone(), state.clone()];
    let doc = json(&ipcx(&runtime, &["ls", "--json", "--kind", "ring"]));
    let objs = ours(&doc, &names);
    assert_eq!(objs.len(), 3, "{doc:#}");
    for o in &objs {
        assert_eq!(o["state"], "corrupt header", "{o:#}");
        assert_eq!(o["sure"], false, "{o:#}");
        assert!(o["size"].is_null(), "no size is believed: {o:#}");
    }
    let why = |n: &String| {
        objs.iter().find(|o| o["name"] == n.as_str()).unwrap()["why"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        why(&version).contains("layout version 9"),
        "{}",
        why(&version)
    );
    assert!(
        why(&capacity).contains("capacity 1099511627776"),
        "{}",
        why(&capacity)
    );
    assert!(why(&state).contains("holds 7"), "{}", why(&state));
    // gc leaves what it cannot be sure of unless --match names it.
    let gc = ipcx(&runtime, &["gc", "--json", "--kind", "ring", "--dry-run"]);
    let removed = json(&gc)["removed"].as_array().unwrap().clone();
    assert!(
        removed
            .iter()
            .all(|o| !names.iter().any(|n| o["name"] == n.as_str())),
        "{removed:?}"
    );
    let out = ipcx(&runtime, &["rm", "ring", &version]);
    assert!(out.status.success(), "{}", stderr(&out));
}
