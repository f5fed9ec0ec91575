//! `faas-logs --stdin`: the lines of standard input (NDJSON of messages, as a provider
//! sends them or the viewer downloads them) printed as a provider's would be, with the
//! same filters and formats; so saved logs are read with the same tool.

use std::collections::VecDeque;
use std::io::BufRead;

use bytes::Bytes;
use faas_logs::client::LogLine;

use crate::logs::{finish, printer, since, write, Failure};
use crate::logs_args::LogsArgs;

pub(crate) fn run(args: &LogsArgs) -> Result<(), Failure> {
    let mut printer = printer(args, args.names.len() > 1);
    let since = since(args);
    let keeps = |line: &LogLine| {
        let m = line.message();
        (args.names.is_empty() || args.names.iter().any(|n| *n == *m.name))
            && (args.namespace.is_empty() || args.namespace == *m.namespace)
            && args
                .only_instance
                .as_ref()
                .is_none_or(|i| *i == *m.instance)
            && since.is_none_or(|since| m.timestamp >= since)
    };
    // `--lines=N` keeps the last N, printed at the end; otherwise each line is printed
    // as it comes (`tail -f saved.ndjson | faas-logs --stdin` follows the file).
    let last = usize::try_from(args.lines).ok().filter(|&n| n > 0);
    let mut kept: VecDeque<LogLine> = VecDeque::new();
    let mut input = std::io::BufReader::with_capacity(64 * 1024, std::io::stdin().lock());
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut buf = Vec::with_capacity(128 * 1024);
    let (mut number, mut bad) = (0usize, 0usize);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = input
            .read_until(b'\n', &mut line)
            .map_err(|e| Failure::Error(format!("cannot read standard input: {e}")))?;
        if read == 0 {
            break;
        }
        number += 1;
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match LogLine::parse(Bytes::copy_from_slice(text)) {
            Ok(parsed) if !keeps(&parsed) => {}
            Ok(parsed) => match last {
                Some(n) => {
                    if kept.len() == n {
                        kept.pop_front();
                    }
                    kept.push_back(parsed);
                }
                None => printer.print(&parsed, &mut buf),
            },
            Err(e) => {
                bad += 1;
                write(&mut out, &mut buf)?;
                eprintln!(
                    "faas-logs: line {number} of standard input is not a message: {}",
                    faas_logs::Error::describe(&e)
                );
            }
        }
        // Out when nothing more is waiting, so that a followed file shows at once.
        if buf.len() >= 64 * 1024 || input.buffer().is_empty() {
            write(&mut out, &mut buf)?;
        }
    }
    for parsed in &kept {
        printer.print(parsed, &mut buf);
    }
    write(&mut out, &mut buf)?;
    finish(&printer)?;
    match bad {
        0 => Ok(()),
        _ => Err(Failure::Error(format!(
            "{bad} of {number} lines of standard input were not messages"
        ))),
    }
}
