//! `journalctl` as a child process: started with the arguments of one read, its output
//! read line by line, and killed and reaped however the read ends.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;

use crate::Error;

/// A line of output longer than this is skipped (and reported as a gap): a 768 MiB
/// journal field must not take the provider's memory.
pub(crate) const MAX_LINE: usize = 64 << 20;

/// How much of `journalctl`'s error output is kept for the error message.
const MAX_STDERR: u64 = 4096;

/// The program and the arguments every run shares (`--directory`, `--namespace`, ...).
#[derive(Debug, Clone)]
pub(crate) struct Journalctl {
    pub(crate) program: PathBuf,
    pub(crate) common: Vec<OsString>,
}

/// What one line of output is.
pub(crate) enum Line<'a> {
    /// A JSON entry.
    Entry(&'a [u8]),
    /// `--show-cursor`'s last line.
    Cursor(&'a str),
    /// A line longer than [`MAX_LINE`], skipped.
    TooLong,
    /// The end of the output.
    End,
}

/// One running `journalctl`.
pub(crate) struct Run {
    /// Taken once the child has been waited for.
    child: Option<Child>,
    stdout: BufReader<ChildStdout>,
    stderr: Option<JoinHandle<String>>,
    line: Vec<u8>,
    what: &'static str,
    /// Counts the child among the running `journalctl` processes while it lives.
    _running: crate::meter::Open,
}

impl Journalctl {
    /// Starts `journalctl` with the common arguments and `args`; `what` names the read in
    /// error messages.
    pub(crate) fn start(&self, args: &[OsString], what: &'static str) -> Result<Run, Error> {
        let mut command = Command::new(&self.program);
        command
            .args(&self.common)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A backstop: every path through `Run` kills and waits for the child itself.
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| self.not_started(e))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().map(|e| tokio::spawn(read_stderr(e)));
        tracing::debug!(program = %self.program.display(), ?args, what, "journalctl started");
        Ok(Run {
            child: Some(child),
            stdout: BufReader::with_capacity(256 << 10, stdout),
            stderr,
            line: Vec::new(),
            what,
            _running: crate::meter::Open::new(crate::meter::JOURNALD_CHILDREN),
        })
    }

    fn not_started(&self, e: std::io::Error) -> Error {
        let program = self.program.display();
        let message = if e.kind() == std::io::ErrorKind::NotFound {
            format!("the journal cannot be read: `{program}` was not found (install systemd's journalctl, or name it with --journalctl)")
        } else {
            format!("the journal cannot be read: `{program}` did not start: {e}")
        };
        Error::unavailable(message)
    }

    /// The cursor `--show-cursor` prints after `args` (`--lines=0` alone: the journal's
    /// newest entry), `None` when nothing matched.
    pub(crate) async fn newest_cursor(&self, args: &[OsString]) -> Result<Option<String>, Error> {
        let mut args = args.to_vec();
        args.push("--show-cursor".into());
        let mut run = self.start(&args, "the journal's end")?;
        let mut cursor = None;
        loop {
            match run.next_line().await {
                Ok(Line::Cursor(c)) => cursor = Some(c.to_owned()),
                Ok(Line::End) => break,
                Ok(Line::Entry(_) | Line::TooLong) => {}
                Err(e) => {
                    run.kill().await;
                    return Err(e);
                }
            }
        }
        run.finish().await?;
        Ok(cursor)
    }
}

impl Run {
    /// The next line of output. A read error is an error; the end is [`Line::End`].
    pub(crate) async fn next_line(&mut self) -> Result<Line<'_>, Error> {
        loop {
            self.line.clear();
            let read = (&mut self.stdout)
                .take((MAX_LINE + 1) as u64)
                .read_until(b'\n', &mut self.line)
                .await
                .map_err(read_failed)?;
            if read == 0 {
                return Ok(Line::End);
            }
            if self.line.last() != Some(&b'\n') && self.line.len() > MAX_LINE {
                self.skip_rest().await?;
                return Ok(Line::TooLong);
            }
            let end = self.line.len() - usize::from(self.line.last() == Some(&b'\n'));
            let line = &self.line[..end];
            const CURSOR: &[u8] = b"-- cursor: ";
            if line.starts_with(CURSOR) && std::str::from_utf8(&line[CURSOR.len()..]).is_ok() {
                let cursor = std::str::from_utf8(&self.line[CURSOR.len()..end]).unwrap_or("");
                return Ok(Line::Cursor(cursor));
            }
            // "-- No entries --" and other notes are not entries: read on.
            if !(line.starts_with(b"-- ") || line.is_empty()) {
                return Ok(Line::Entry(&self.line[..end]));
            }
        }
    }

    async fn skip_rest(&mut self) -> Result<(), Error> {
        let mut skip = Vec::new();
        loop {
            skip.clear();
            let n = (&mut self.stdout)
                .take(1 << 20)
                .read_until(b'\n', &mut skip)
                .await
                .map_err(read_failed)?;
            if n == 0 || skip.last() == Some(&b'\n') {
                return Ok(());
            }
        }
    }

    /// Waits for the child once its output has ended. Exit 0 is success, and so is exit 1
    /// with nothing on stderr (what `--show-cursor` does when nothing matched); anything
    /// else is a 503 quoting `journalctl`.
    pub(crate) async fn finish(mut self) -> Result<(), Error> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let status = child.wait().await;
        let stderr = self.stderr_text().await;
        match status {
            Ok(status) if status.success() => {
                if !stderr.is_empty() {
                    tracing::warn!(what = self.what, "journalctl: {}", stderr.trim_end());
                }
                Ok(())
            }
            Ok(status) if status.code() == Some(1) && stderr.trim().is_empty() => Ok(()),
            Ok(status) => Err(self.failed(status, &stderr)),
            Err(e) => Err(Error::unavailable(format!(
                "waiting for journalctl failed: {e}"
            ))),
        }
    }

    /// The error of a `journalctl --follow` whose output ended: it never ends by itself.
    pub(crate) async fn ended(mut self) -> Error {
        let Some(mut child) = self.child.take() else {
            return Error::unavailable("journalctl stopped following the journal");
        };
        let status = child.wait().await;
        let stderr = self.stderr_text().await;
        match status {
            Ok(status) => self.failed(status, &stderr),
            Err(e) => Error::unavailable(format!("waiting for journalctl failed: {e}")),
        }
    }

    fn failed(&self, status: ExitStatus, stderr: &str) -> Error {
        let said = stderr.trim();
        let said = if said.is_empty() {
            String::new()
        } else {
            format!(": {}", said.replace('\n', "; "))
        };
        Error::unavailable(format!(
            "the journal cannot be read ({}): journalctl exited with {status}{said}",
            self.what
        ))
    }

    async fn stderr_text(&mut self) -> String {
        match self.stderr.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => String::new(),
        }
    }

    /// Kills the child and waits for it, so that no `journalctl` outlives its read and
    /// none is left a zombie.
    pub(crate) async fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            if let Err(e) = child.kill().await {
                tracing::warn!("journalctl could not be stopped: {e}");
            }
        }
        if let Some(task) = self.stderr.take() {
            task.abort();
        }
    }
}

fn read_failed(e: std::io::Error) -> Error {
    Error::unavailable(format!("reading journalctl's output failed: {e}"))
}

async fn read_stderr(stderr: impl AsyncRead + Unpin) -> String {
    let mut text = Vec::new();
    let mut stderr = stderr;
    let _ = (&mut stderr).take(MAX_STDERR).read_to_end(&mut text).await;
    // Drain the rest, so that a talkative journalctl never blocks on a full pipe.
    let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
    String::from_utf8_lossy(&text).into_owned()
}
