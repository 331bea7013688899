//! Mailboxes across machines: a mailbox served over TCP and a client that reaches it as
//! `name@host:port`, each in its own process (over loopback here).
//!
//! The parent binds the mailbox `calc-<pid>`, and serves the mailboxes of its runtime
//! directory on an ephemeral loopback port with [`TcpServeOptions::bind`] and
//! [`TcpServer::run`] (what `ipcx mailbox serve --tcp ADDR` runs). It starts a second
//! copy of this program, which sends requests to `calc-<pid>@127.0.0.1:PORT` with a
//! [`RemoteMailbox`]: one TCP connection, the IPMB framing, the server's payload cap. The
//! server forwards each request to the local mailbox and relays its reply; the local
//! mailbox sees the server's own mailbox (`tcp-PID-N`) as the sender. A name the server
//! does not have is `NotFound`.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p ipcx --example mailbox_tcp
//! ```

mod common;

use std::error::Error;
use std::sync::Arc;

use common::{Reaper, TIMEOUT};
use ipcx::ErrorKind;
use ipcx::mailbox::{Mailbox, RemoteMailbox, TcpServeOptions, TcpServer};

fn main() -> Result<(), Box<dyn Error>> {
    common::run(parent, |[target]| child(&target.to_string_lossy()))
}

fn parent() -> Result<(), Box<dyn Error>> {
    let name = format!("calc-{}", std::process::id());
    let mailbox = Mailbox::bind(&name)?;
    let server: Arc<TcpServer> = Arc::new(TcpServeOptions::new().bind("127.0.0.1:0")?);
    let target = format!("{name}@{}", server.local_addr()?);
    println!("[parent] mailbox {name:?} served over TCP as {target}");
    let runner = {
        let server = server.clone();
        std::thread::spawn(move || server.run())
    };

    let child = Reaper::spawn(common::child_command()?.arg(&target))?;
    loop {
        let env = mailbox.recv_timeout(TIMEOUT)?;
        let text = String::from_utf8_lossy(env.payload()).into_owned();
        println!(
            "[parent] {text:?} from mailbox {:?} (the TCP server's)",
            env.sender().unwrap_or("unbound")
        );
        if text == "bye" {
            env.reply(b"bye")?;
            break;
        }
        let sum: i64 = text
            .split('+')
            .map(|n| n.trim().parse::<i64>().unwrap_or(0))
            .sum();
        env.reply(sum.to_string().as_bytes())?;
    }
    let status = child.wait_success(TIMEOUT)?;
    println!("[parent] the client exited with {status}");
    server.shutdown();
    runner.join().map_err(|_| "the server thread panicked")??;
    drop(server); // removes the server's own mailbox
    Ok(())
}

fn child(target: &str) -> Result<(), Box<dyn Error>> {
    let calc = RemoteMailbox::connect_timeout(target, TIMEOUT)?;
    println!(
        "[child] connected to {target}; payloads up to {} bytes",
        calc.max_payload()
    );
    for sum in ["1 + 2", "40 + 2", "-5 + 5 + 7"] {
        let answer = calc.request(sum.as_bytes(), TIMEOUT)?;
        println!("[child] {sum} = {}", String::from_utf8_lossy(&answer));
    }
    let (_, host_port) = target.split_once('@').ok_or("target without @")?;
    match RemoteMailbox::connect_timeout(&format!("no-such-mailbox@{host_port}"), TIMEOUT) {
        Err(e) if e.kind() == ErrorKind::NotFound => println!("[child] as expected: {e}"),
        other => return Err(format!("expected NotFound, got {other:?}").into()),
    }
    calc.request(b"bye", TIMEOUT)?;
    println!("[child] done");
    Ok(())
}
