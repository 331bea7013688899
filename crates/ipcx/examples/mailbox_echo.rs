//! Mailboxes: an echo server and a client, each in its own process.
//!
//! The parent binds the mailbox `echo-<pid>` in the private runtime directory
//! (`$XDG_RUNTIME_DIR/ipcx`, else `/tmp/ipcx-<uid>`) with [`Mailbox::bind`], and starts a
//! second copy of this program as the client. The client binds its own mailbox and sends
//! requests with [`Mailbox::request`]; the server receives each one in an
//! [`Envelope`](ipcx::mailbox::Envelope) that names the sender as the kernel reported it
//! (its mailbox name, pid, uid and gid: nothing the client could make up), and answers
//! with [`Envelope::reply`](ipcx::mailbox::Envelope::reply). A request to a mailbox that
//! does not exist fails at once with `NotFound`.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p ipcx --example mailbox_echo
//! ```

mod common;

use std::error::Error;

use common::{Reaper, TIMEOUT};
use ipcx::ErrorKind;
use ipcx::mailbox::Mailbox;

fn main() -> Result<(), Box<dyn Error>> {
    common::run(parent, |[server]| child(&server.to_string_lossy()))
}

fn parent() -> Result<(), Box<dyn Error>> {
    let name = format!("echo-{}", std::process::id());
    let server = Mailbox::bind(&name)?;
    println!(
        "[parent] serving mailbox {name:?} at {}",
        server.path().display()
    );

    let child = Reaper::spawn(common::child_command()?.arg(&name))?;
    println!("[parent] started the client, pid {}", child.id());

    loop {
        let env = server.recv_timeout(TIMEOUT)?;
        let text = String::from_utf8_lossy(env.payload()).into_owned();
        println!(
            "[parent] request {:?} from mailbox {:?} ({}): {text:?}",
            env.correlation_id().unwrap_or(0),
            env.sender().unwrap_or("unbound"),
            env.credentials()
        );
        if env.credentials().pid != Some(child.id()) {
            return Err("the kernel says the request came from another process".into());
        }
        if text == "bye" {
            env.reply(b"bye")?;
            break;
        }
        env.reply(text.to_uppercase().as_bytes())?;
    }
    let status = child.wait_success(TIMEOUT)?;
    println!("[parent] the client exited with {status}; dropping the mailbox removes its socket");
    drop(server);
    Ok(())
}

fn child(server: &str) -> Result<(), Box<dyn Error>> {
    let me = Mailbox::bind(&format!("echo-client-{}", std::process::id()))?;
    println!("[child] bound mailbox {:?}", me.name());
    for word in ["hello", "mailbox", "world"] {
        let answer = me.request(server, word.as_bytes(), TIMEOUT)?;
        println!("[child] {word:?} -> {:?}", String::from_utf8_lossy(&answer));
    }
    match me.request("no-such-mailbox", b"anyone?", TIMEOUT) {
        Err(e) if e.kind() == ErrorKind::NotFound => println!("[child] as expected: {e}"),
        other => return Err(format!("expected NotFound, got {other:?}").into()),
    }
    me.request(server, b"bye", TIMEOUT)?;
    println!("[child] done");
    Ok(())
}
