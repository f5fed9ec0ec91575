//! `faas-logs NAME` (and `faas-logs logs NAME`): read functions' logs from a provider or
//! gateway and print them as faas-cli does.

use std::io::{IsTerminal, Write};
use std::task::Poll;
use std::time::Duration;

use faas_logs::client::{ClientError, LineStream, LogClient, Resume};
use faas_logs::{FunctionName, Request};

use crate::gateway::Credentials;
use crate::logs_args::{ColorWhen, Format, LogsArgs};
use crate::print::Printer;
use crate::{gateway, layout};

/// How the command ended.
pub(crate) enum Failure {
    /// A message for stderr, exit 1.
    Error(String),
    /// Ctrl-C, exit 130.
    Interrupted,
}

pub(crate) async fn run(mut args: LogsArgs) -> Result<(), Failure> {
    if args.stdin {
        return crate::stdin::run(&args);
    }
    let gateway = gateway::gateway_url(args.gateway.as_deref(), args.yaml.as_deref())
        .map_err(Failure::Error)?;
    let credentials = gateway::credentials(&gateway, args.token.as_deref(), args.user.as_deref())
        .map_err(Failure::Error)?;
    let format = if args.json { Format::Json } else { args.output };
    let insecure = !gateway.starts_with("https")
        && !gateway.starts_with("http://127.0.0.1")
        && !gateway.starts_with("http://localhost");
    if insecure && !args.tls_no_verify && format != Format::Json {
        eprintln!(
            "WARNING! You are not using an encrypted connection to the gateway, consider using HTTPS."
        );
    }

    let mut client = LogClient::builder(&gateway).max_line(args.max_line);
    client = match credentials {
        Credentials::None => client,
        Credentials::Basic { user, password } => client.basic_auth(user, password),
        Credentials::Bearer(token) => client.bearer(token),
    };
    if args.tls_no_verify {
        client = client.danger_accept_invalid_certs();
    }
    if let Some(file) = &args.cacert {
        let pem = std::fs::read(file)
            .map_err(|e| Failure::Error(format!("cannot read {}: {e}", file.display())))?;
        client = client.root_certificate(&pem).map_err(|e| {
            Failure::Error(format!(
                "{}: {}",
                file.display(),
                faas_logs::Error::describe(&e)
            ))
        })?;
    }
    // faas-cli sends --lines as it is whenever it is not 0: tail=-1 by default.
    let tail = usize::try_from(args.lines).ok().filter(|&n| n > 0);
    if args.lines < 0 {
        client = client.unlimited_tail_as(args.lines);
    }
    let client = client
        .build()
        .map_err(|e| Failure::Error(faas_logs::Error::describe(&e)))?;
    // Functions chosen from the provider's list, which may grow while following.
    let selecting = args.regex.is_some() || args.all;
    let following = args.tail || args.forever;
    if selecting {
        select(&client, &gateway, &mut args, following).await?;
    }
    // Following a selection that matches nothing yet: waiting for a function to appear.
    let waiting = args.names.is_empty();

    let since = since(&args);
    let request = Request {
        namespace: args.namespace.clone(),
        instance: args.only_instance.clone().unwrap_or_default(),
        since,
        tail,
        follow: following,
        ..Request::new(args.names.first().cloned().unwrap_or_default())
    };
    if std::env::var("FAAS_DEBUG").as_deref() == Ok("1") {
        for name in &args.names {
            let query = client.query(&Request {
                name: name.clone(),
                ..request.clone()
            });
            println!("{query}");
        }
    }

    let several = args.names.len() > 1;
    let mut printer = printer(&args, several || selecting);

    let resume = args
        .forever
        .then(|| Resume::default().with_max_failures(args.retries));
    // A follow the provider ends (its timeout) ends the command as faas-cli's does; a
    // person at a terminal is told why, and how to go on.
    let say_when_ended = request.follow && !args.forever && std::io::stderr().is_terminal();
    let mut missing = Vec::new();
    // Kept for the functions that appear while following.
    let watched = (request.follow && selecting).then(|| request.clone());
    let opened = async {
        if waiting {
            Ok(Box::pin(futures_util::stream::empty()) as LineStream)
        } else if several && resume.is_none() {
            open_each(&client, &args.names, &request, &mut missing).await
        } else if several {
            let names: Vec<&str> = args.names.iter().map(String::as_str).collect();
            client.lines_of(&names, &request, resume).await
        } else if let Some(resume) = resume {
            Ok(client.follow_lines(request, resume))
        } else {
            client.lines(&request).await
        }
    };
    let interrupted = async {
        // Without a signal handler, Ctrl-C would still end the process, only less cleanly.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(interrupted);
    tokio::select! {
        opened = opened => {
            let mut stream = opened.map_err(|e| Failure::Error(refused(&gateway, &e)))?;
            if let Some(request) = &watched {
                let every = args.relist.to_std().unwrap_or(Duration::from_secs(10));
                let every = every.max(Duration::from_millis(10));
                stream = with_new_functions(client.clone(), &args, request, stream, every, waiting);
            }
            tokio::select! {
                printed = print_all(stream, &mut printer, say_when_ended) => printed?,
                () = &mut interrupted => return Err(Failure::Interrupted),
            }
        }
        () = &mut interrupted => return Err(Failure::Interrupted),
    }
    // The stream is dropped on return: the connection closes at once.
    if missing.is_empty() {
        finish(&printer)
    } else {
        Err(Failure::Error(format!(
            "{} of {} functions not found: {}",
            missing.len(),
            args.names.len(),
            missing.join(", ")
        )))
    }
}

/// Adds to `args.names` the functions `--regex` or `--all` choose from the provider's
/// list, and sets `args.namespace` to theirs: they are read with one query each, in one
/// namespace. When none matches, a follow (`following`) waits for one to appear, as
/// stern waits for pods; a read of the history is an error.
async fn select(
    client: &LogClient,
    gateway: &str,
    args: &mut LogsArgs,
    following: bool,
) -> Result<(), Failure> {
    let listed = client
        .functions(&args.namespace)
        .await
        .map_err(|e| Failure::Error(refused(gateway, &e)))?
        .ok_or_else(|| {
            Failure::Error(format!(
                "{gateway} does not list its functions: name them instead of --regex or --all"
            ))
        })?;
    let chosen: Vec<FunctionName> = listed
        .into_iter()
        .filter(|f| args.namespace.is_empty() || f.namespace == args.namespace)
        .filter(|f| args.regex.as_ref().is_none_or(|r| r.is_match(&f.name)))
        .collect();
    let mut namespaces: Vec<&str> = chosen.iter().map(|f| f.namespace.as_str()).collect();
    namespaces.sort_unstable();
    namespaces.dedup();
    match namespaces[..] {
        [] if args.names.is_empty() && following => {
            let every = args.relist.to_std().unwrap_or(Duration::from_secs(10));
            eprintln!(
                "faas-logs: {}; waiting for one (the list is read every {} s)",
                match &args.regex {
                    Some(r) => format!("no function of the provider's matches {r} yet"),
                    None => "the provider lists no function yet".to_owned(),
                },
                every.as_secs_f64()
            );
        }
        [] if args.names.is_empty() => {
            return Err(Failure::Error(match &args.regex {
                Some(r) => format!("no function of the provider's matches {r}"),
                None => "the provider lists no function".to_owned(),
            }))
        }
        [] => {}
        [one] => args.namespace = one.to_owned(),
        _ => {
            return Err(Failure::Error(format!(
                "the functions chosen are in several namespaces ({}): choose one with -n",
                namespaces.join(", ")
            )))
        }
    }
    for f in chosen {
        if !args.names.contains(&f.name) {
            args.names.push(f.name);
        }
    }
    Ok(())
}

/// `stream`, and the lines of the functions `--regex` or `--all` choose that the
/// provider starts to list while it is read: the list is read again every `every`, and
/// a new function is followed from its first line. Ends when every stream has ended;
/// `waiting` (nothing chosen yet, `stream` empty), once a function has come and ended.
/// Without a namespace (`-n`), a function of any namespace is taken.
fn with_new_functions(
    client: LogClient,
    args: &LogsArgs,
    request: &Request,
    stream: LineStream,
    every: Duration,
    waiting: bool,
) -> LineStream {
    let (found, mut arrivals) = tokio::sync::mpsc::unbounded_channel::<LineStream>();
    let mut known: std::collections::HashSet<String> = args.names.iter().cloned().collect();
    let (regex, namespace, request) = (args.regex.clone(), args.namespace.clone(), request.clone());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if found.is_closed() {
                return;
            }
            let Ok(Some(listed)) = client.functions(&namespace).await else {
                continue;
            };
            for f in listed {
                let wanted = (namespace.is_empty() || f.namespace == namespace)
                    && regex.as_ref().is_none_or(|r| r.is_match(&f.name))
                    && known.insert(f.name.clone());
                if !wanted {
                    continue;
                }
                let whole = Request {
                    name: f.name.clone(),
                    namespace: f.namespace.clone(),
                    since: None,
                    tail: None,
                    ..request.clone()
                };
                match client.lines(&whole).await {
                    Ok(lines) => {
                        if found.send(lines).is_err() {
                            return;
                        }
                    }
                    Err(e) => eprintln!(
                        "faas-logs: warning: {}: {}",
                        f.name,
                        faas_logs::Error::describe(&e)
                    ),
                }
            }
        }
    });
    let mut all = futures_util::stream::SelectAll::new();
    all.push(stream);
    let mut started = !waiting;
    Box::pin(futures_util::stream::poll_fn(move |cx| {
        while let Poll::Ready(Some(more)) = arrivals.poll_recv(cx) {
            all.push(more);
            started = true;
        }
        match futures_util::StreamExt::poll_next_unpin(&mut all, cx) {
            // Nothing has come yet: the list's next reading may bring a function (the
            // channel's waker is registered).
            Poll::Ready(None) if !started => Poll::Pending,
            polled => polled,
        }
    }))
}

/// The printer the flags ask for; lines of `several` functions always say whose they are.
pub(crate) fn printer(args: &LogsArgs, several: bool) -> Printer {
    let format = if args.json { Format::Json } else { args.output };
    let layout = match args.timestamps {
        Some(style) => style.layout().to_owned(),
        None => layout::named(&args.time_format),
    };
    let mut printer = Printer::new(format, layout::Layout::parse(&layout));
    printer.zone = args.timezone;
    printer.name = args.name || several;
    printer.instance = args.instance || several;
    printer.include = args.include.clone();
    printer.exclude = args.exclude.clone();
    printer.exclude_instance = args.exclude_instance.clone();
    printer.highlight = args.highlight.clone();
    printer.template = args.template.clone();
    // NO_COLOR, CLICOLOR, CLICOLOR_FORCE and a dumb terminal are honoured as anstream
    // reads them.
    printer.colour = match args.color {
        ColorWhen::Always => true,
        ColorWhen::Never => false,
        ColorWhen::Auto => {
            anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never
        }
    };
    printer
}

/// The end of a run: an error when the template failed on some lines.
pub(crate) fn finish(printer: &Printer) -> Result<(), Failure> {
    match printer.template_failures {
        0 => Ok(()),
        n => Err(Failure::Error(format!("--template failed on {n} lines"))),
    }
}

/// Opens each function's stream and merges them; a function the provider does not know
/// is a warning (and a name in `missing`), the others are still shown. Fails only when
/// none opens.
async fn open_each(
    client: &LogClient,
    names: &[String],
    request: &Request,
    missing: &mut Vec<String>,
) -> Result<LineStream, ClientError> {
    let mut streams = Vec::with_capacity(names.len());
    let mut first_error = None;
    for name in names {
        let request = Request {
            name: name.clone(),
            ..request.clone()
        };
        match client.lines(&request).await {
            Ok(stream) => streams.push(stream),
            Err(ClientError::Status {
                status: 404,
                message,
            }) => {
                eprintln!("faas-logs: warning: {name}: {message}");
                missing.push(name.clone());
            }
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    match first_error {
        Some(e) => Err(e),
        None if streams.is_empty() => Err(ClientError::Status {
            status: 404,
            message: format!("none of the functions was found: {}", names.join(", ")),
        }),
        None => Ok(faas_logs::client::merge_lines_by_time(
            streams,
            faas_logs::client::MERGE_WINDOW,
        )),
    }
}

/// How one round of reading ended.
enum Round {
    /// Lines were printed; nothing more is ready (or the buffer is full): write them.
    Printed,
    /// The stream broke.
    Broken(ClientError),
    /// The stream ended.
    Ended,
}

/// Prints every line of `stream`, writing out whenever the provider has nothing more
/// ready. The lines ready are printed in one poll, not one await each: a dump runs at
/// the provider's speed.
async fn print_all(
    mut stream: LineStream,
    printer: &mut Printer,
    say_when_ended: bool,
) -> Result<(), Failure> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut buf: Vec<u8> = Vec::with_capacity(128 * 1024);
    let mut printed = 0usize;
    loop {
        let round = std::future::poll_fn(|cx| {
            let mut any = false;
            loop {
                match stream.as_mut().poll_next(cx) {
                    Poll::Ready(Some(Ok(line))) => {
                        printer.print(&line, &mut buf);
                        printed += 1;
                        any = true;
                        if buf.len() >= 64 * 1024 {
                            return Poll::Ready(Round::Printed);
                        }
                    }
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Round::Broken(e)),
                    Poll::Ready(None) => return Poll::Ready(Round::Ended),
                    Poll::Pending if any => return Poll::Ready(Round::Printed),
                    Poll::Pending => return Poll::Pending,
                }
            }
        })
        .await;
        write(&mut out, &mut buf)?;
        match round {
            Round::Printed => {}
            Round::Broken(e) => {
                return Err(Failure::Error(format!(
                    "the log stream broke off after {printed} lines: {}",
                    faas_logs::Error::describe(&e)
                )))
            }
            Round::Ended => {
                if say_when_ended {
                    eprintln!(
                        "faas-logs: the provider ended the stream (its timeout); --forever follows on"
                    );
                }
                return Ok(());
            }
        }
    }
}

/// Writes and flushes what is buffered; a closed stdout (`| head`) ends quietly.
pub(crate) fn write(out: &mut impl Write, buf: &mut Vec<u8>) -> Result<(), Failure> {
    let written = out.write_all(buf).and_then(|()| out.flush());
    buf.clear();
    match written {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(Failure::Error(format!("cannot write the logs: {e}"))),
    }
}

/// Why the provider did not give a stream, as faas-cli words it, with the cause.
fn refused(gateway: &str, e: &ClientError) -> String {
    match e {
        ClientError::Status { status: 401, .. } => format!(
            "unauthorized access, run \"faas-cli login\" to setup authentication for this server ({})",
            faas_logs::Error::describe(e)
        ),
        ClientError::Status { status, message } => {
            format!("server returned unexpected status code: {status} - {message}")
        }
        ClientError::Transport(_) | ClientError::Timeout(_) => {
            let why = faas_logs::Error::describe(e);
            // rustls's words for a server that answered TLS with plain HTTP.
            let plain_http = why.contains("InvalidContentType") || why.contains("corrupt message");
            match gateway.strip_prefix("https://") {
                Some(rest) if plain_http => format!(
                    "cannot connect to OpenFaaS on URL: {gateway}: the server answers plain HTTP, not HTTPS; use http://{rest}"
                ),
                _ => format!("cannot connect to OpenFaaS on URL: {gateway}: {why}"),
            }
        }
        _ => faas_logs::Error::describe(e),
    }
}

/// The time `--since-time` or `--since` asks for, to the second as faas-cli sends it.
pub(crate) fn since(args: &LogsArgs) -> Option<chrono::DateTime<chrono::Utc>> {
    match (args.since_time, args.since) {
        (Some(at), _) => Some(at.to_utc()),
        (None, Some(ago)) if !ago.is_zero() => Some(chrono::Utc::now() - ago),
        _ => None,
    }
    .map(cut_to_the_second)
}

/// faas-cli sends `since` in RFC 3339 without a fraction.
fn cut_to_the_second(at: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    use chrono::Timelike;
    at.with_nanosecond(0).unwrap_or(at)
}
