//! journald's native protocol: one datagram per entry on `/run/systemd/journal/socket`,
//! each field `KEY=value\n`, or `KEY\n`, the value's length as 64-bit little-endian, the
//! value and `\n` when the value holds a newline. An entry too large for a datagram is
//! written to a sealed memory file whose descriptor is sent instead.

use std::io::{self, IoSlice, Write};
use std::mem::MaybeUninit;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix};

/// Where journald listens for native entries.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// A syslog priority, as journald's `PRIORITY` field holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Priority {
    /// 3: what faasd and `faas-logs collect` give stderr.
    Err = 3,
    /// 4
    Warning = 4,
    /// 6: what faasd and `faas-logs collect` give stdout.
    Info = 6,
}

impl Priority {
    fn field(self) -> &'static [u8] {
        match self {
            Priority::Err => b"3",
            Priority::Warning => b"4",
            Priority::Info => b"6",
        }
    }
}

/// Writes entries to journald over its native protocol.
///
/// ```no_run
/// use faas_logs::journald::{JournalWriter, Priority};
///
/// let mut journal = JournalWriter::new(faas_logs::journald::JOURNAL_SOCKET);
/// journal.send(
///     b"hello from figlet",
///     Priority::Info,
///     &[("SYSLOG_IDENTIFIER", b"openfaas-fn:figlet"), ("CONTAINER_ID", b"figlet")],
/// )?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct JournalWriter {
    path: PathBuf,
    socket: Option<UnixDatagram>,
    entry: Vec<u8>,
}

impl JournalWriter {
    /// A writer to the socket at `path`; nothing is opened until the first entry.
    #[must_use]
    pub fn new(path: impl AsRef<Path>) -> Self {
        JournalWriter {
            path: path.as_ref().to_owned(),
            socket: None,
            entry: Vec::new(),
        }
    }

    /// The socket's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends one entry: `MESSAGE`, `PRIORITY` and `fields`. Field names must be what
    /// journald accepts (upper-case letters, digits and `_`, not starting with `_`);
    /// values are any bytes. An error means journald did not take the entry (it is not
    /// running, or did not read for five seconds); send it again later.
    pub fn send(
        &mut self,
        message: &[u8],
        priority: Priority,
        fields: &[(&str, &[u8])],
    ) -> io::Result<()> {
        self.entry.clear();
        put_field(&mut self.entry, "MESSAGE", message);
        put_field(&mut self.entry, "PRIORITY", priority.field());
        for (key, value) in fields {
            put_field(&mut self.entry, key, value);
        }
        let result = self.send_entry();
        if result.is_err() {
            // journald may come back on a new socket: connect again next time.
            self.socket = None;
        }
        result
    }

    fn send_entry(&mut self) -> io::Result<()> {
        let socket = match &self.socket {
            Some(socket) => socket,
            None => {
                let socket = UnixDatagram::unbound()?;
                socket.set_write_timeout(Some(Duration::from_secs(5)))?;
                self.socket.insert(socket)
            }
        };
        match socket.send_to(&self.entry, &self.path) {
            Ok(_) => Ok(()),
            Err(e) if is_too_large(&e) => send_as_file(socket, &self.path, &self.entry),
            Err(e) => Err(e),
        }
    }
}

fn is_too_large(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if code == rustix::io::Errno::MSGSIZE.raw_os_error() || code == rustix::io::Errno::NOBUFS.raw_os_error())
}

/// An entry over the datagram limit: written to a sealed memory file, whose descriptor
/// journald reads the entry from.
fn send_as_file(socket: &UnixDatagram, path: &Path, entry: &[u8]) -> io::Result<()> {
    let memfd = rustix::fs::memfd_create(
        "faas-logs-journal-entry",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?;
    let mut file = std::fs::File::from(memfd);
    file.write_all(entry)?;
    rustix::fs::fcntl_add_seals(
        &file,
        SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL,
    )?;
    let address = SocketAddrUnix::new(path)?;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [std::os::fd::AsFd::as_fd(&file)];
    control.push(SendAncillaryMessage::ScmRights(&fds));
    let empty: [IoSlice<'_>; 0] = [];
    rustix::net::sendmsg_addr(socket, &address, &empty, &mut control, SendFlags::empty())?;
    Ok(())
}

/// Appends one field in the native format.
fn put_field(entry: &mut Vec<u8>, key: &str, value: &[u8]) {
    entry.extend_from_slice(key.as_bytes());
    if value.contains(&b'\n') {
        entry.push(b'\n');
        entry.extend_from_slice(&(value.len() as u64).to_le_bytes());
        entry.extend_from_slice(value);
    } else {
        entry.push(b'=');
        entry.extend_from_slice(value);
    }
    entry.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_with_newlines_are_sent_with_their_length() {
        let mut entry = Vec::new();
        put_field(&mut entry, "MESSAGE", b"a\nb");
        put_field(&mut entry, "PRIORITY", b"6");
        let mut expected = b"MESSAGE\n".to_vec();
        expected.extend_from_slice(&3u64.to_le_bytes());
        expected.extend_from_slice(b"a\nb\nPRIORITY=6\n");
        assert_eq!(entry, expected);
    }
}
