//! Exit codes that scripts can rely on, and the one error type the subcommands return.

use std::fmt;
use std::process::ExitCode;

use ipcx::ErrorKind;

/// The command did what it was asked.
pub const OK: u8 = 0;
/// A runtime error: the operation failed (the message says which, on what, and why).
pub const FAILED: u8 = 1;
/// A usage error: bad arguments or a bad address (clap uses 2 as well).
pub const USAGE: u8 = 2;
/// A wait ran out: no receiver appeared, or fewer messages than asked arrived in time.
pub const TIMED_OUT: u8 = 3;
/// Refused: the object belongs to another user, or (rm of a ring or mailbox) it is in
/// use by a live process.
pub const REFUSED: u8 = 4;

/// The `EXIT STATUS` section shared by every subcommand's `--help`.
pub const HELP: &str = "\
EXIT STATUS:
  0  success
  1  runtime error (the message names the operation, the object and what to do)
  2  usage error: bad arguments or a bad address
  3  timed out: a --timeout ran out before the work was done
  4  refused: the object belongs to another user, or is a ring or mailbox in use (rm)";

/// A failed subcommand: what to print and which exit code to leave with.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(USAGE, message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<ipcx::Error> for Failure {
    fn from(e: ipcx::Error) -> Failure {
        let code = match e.kind() {
            ErrorKind::TimedOut => TIMED_OUT,
            ErrorKind::InvalidName | ErrorKind::InvalidInput => USAGE,
            _ => FAILED,
        };
        Failure::new(code, e.to_string())
    }
}

/// Prints the failure (if any) as `ipcx: …` and turns the result into the exit code.
pub fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::from(OK),
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("ipcx: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}

/// Writes one line of a command's report to standard output. A reader that stopped
/// early (`ipcx ls | head -1`) ends the command quietly with status 0; any other write
/// error ends it with status 1.
pub fn write_line(args: fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(i32::from(OK));
        }
        eprintln!("ipcx: write stdout: {e}");
        std::process::exit(i32::from(FAILED));
    }
}

/// `println!` for reports, through [`write_line`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::exit::write_line(format_args!($($arg)*))
    };
}
pub(crate) use outln;
