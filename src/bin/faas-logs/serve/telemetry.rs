//! A telemetry extension: the platform pushes the function's telemetry to it, and it
//! serves `GET /system/logs` (tail, since, follow) from an in-memory store, so
//! `faas-cli logs` works on platforms that let nobody query their logs.
//!
//! - With `AWS_LAMBDA_RUNTIME_API` set, it is a Lambda extension: it registers, starts its
//!   listener, subscribes to the Telemetry API, and follows the extension event loop;
//!   on `SHUTDOWN` it ends open follow streams and exits.
//! - With `EXTENSION_API_ADDR` set, it is a FunctionGraph extension: it starts its
//!   listener (which also takes the invoke notices), registers and subscribes.
//! - With neither, the listener runs on its own and a `curl` that posts a sample batch is
//!   printed.
//!
//! ```sh
//! faas-logs serve telemetry
//! ```

use std::time::Duration;

use super::server;
use super::server::{error, json, Body, ServerArgs};
use bytes::Bytes;
use faas_logs::server::LogHandler;
use faas_logs::store::LogStore;
use faas_logs::telemetry::{TelemetryListener, DEFAULT_MAX_BATCH_BYTES};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio_util::sync::CancellationToken;

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// Where the platform's telemetry is received (default 0.0.0.0:8081 on Lambda,
    /// 127.0.0.1:8081 otherwise: FunctionGraph wants a port in 8081-8090).
    #[arg(long, env = "TELEMETRY_LISTEN")]
    telemetry_listen: Option<String>,
    /// The host the platform posts to, as the subscription names it (default
    /// `sandbox.localdomain` on Lambda, `127.0.0.1` otherwise).
    #[arg(long, env = "TELEMETRY_HOST")]
    telemetry_host: Option<String>,
    /// The function's name (default: the platform's answer to the registration).
    #[arg(long, env = "FUNCTION_NAME")]
    function: Option<String>,
    /// The namespace of the function's lines.
    #[arg(
        long = "namespace",
        env = "DEFAULT_NAMESPACE",
        default_value = "openfaas-fn"
    )]
    namespace: String,
    /// The extension's name, as registered.
    #[arg(long, env = "EXTENSION_NAME", default_value = "faas-logs")]
    extension_name: String,
    /// The largest telemetry batch accepted, in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_BATCH_BYTES)]
    max_batch_bytes: usize,
}

/// Which platform runs the extension.
enum Platform {
    Lambda(String),
    FunctionGraph(String),
    Standalone,
}

use super::server::Failure;

pub(crate) async fn run(args: Args) -> Result<(), server::Failure> {
    let nonempty = |key| std::env::var(key).ok().filter(|v: &String| !v.is_empty());
    let platform = match (
        nonempty("AWS_LAMBDA_RUNTIME_API"),
        nonempty("EXTENSION_API_ADDR"),
    ) {
        (Some(api), _) => Platform::Lambda(api),
        (None, Some(api)) => Platform::FunctionGraph(api),
        (None, None) => Platform::Standalone,
    };
    let credentials = args.server.credentials()?;
    let store = LogStore::builder()
        .default_namespace(args.namespace.clone())
        .build();
    let handler = LogHandler::new(store.clone(), args.server.timeout());
    let stop = CancellationToken::new();

    // Lambda wants the registration first; its answer names the function.
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut lambda_id = None;
    let mut registered_name = None;
    if let Platform::Lambda(api) = &platform {
        let (id, name) = lambda_register(&client, api, &args.extension_name).await?;
        lambda_id = Some(id);
        registered_name = name;
    }

    let default_listen = match platform {
        Platform::Lambda(_) => "0.0.0.0:8081",
        _ => "127.0.0.1:8081",
    };
    let telemetry_address = args.telemetry_listen.as_deref().unwrap_or(default_listen);
    let telemetry = server::listen(telemetry_address, "--telemetry-listen").await?;
    let telemetry_port = telemetry.local_addr()?.port();
    if let Platform::FunctionGraph(api) = &platform {
        registered_name =
            functiongraph_register(&client, api, &args.extension_name, telemetry_port).await?;
    }
    let function = args
        .function
        .clone()
        .or(registered_name)
        .unwrap_or_else(|| "function".to_owned());
    let listener = TelemetryListener::new(store.clone(), function.as_str())
        .with_max_batch_bytes(args.max_batch_bytes);
    // Known before its first line, so that a follower waits for it instead of a 404.
    store.register("", &function)?;

    let logs = server::listen(&args.server.listen, "--listen").await?;
    let local = logs.local_addr()?;
    println!("listening on http://{local}/system/logs for function {function}");
    println!("telemetry received on port {telemetry_port}");

    // The platform's side: telemetry (and FunctionGraph's invoke notices), no auth.
    let receiving = {
        let listener = listener.clone();
        let route = move |req: Request<Incoming>| {
            let listener = listener.clone();
            async move {
                if req.uri().path() == "/extension/invoke" {
                    tracing::debug!("an invoke notice");
                    return json(StatusCode::OK, &serde_json::json!({}));
                }
                listener.handle(req).await.map(Either::Left)
            }
        };
        let until = stop.clone().cancelled_owned();
        let args = ServerArgs {
            basic_auth: false,
            ..args.server.clone()
        };
        tokio::spawn(async move {
            server::serve_until(telemetry, &args, None, route, until, || {}).await
        })
    };
    // The people's side: the log endpoint, and the metrics.
    server::serve_metrics(&args.server).await?;
    {
        let store = store.clone();
        super::metrics::report_store(move || Some(store.totals()));
    }
    let serving = {
        let route = {
            let (handler, store) = (handler.clone(), store.clone());
            move |req| route(req, handler.clone(), store.clone())
        };
        let until = stop.clone().cancelled_owned();
        let server_args = args.server.clone();
        let handler = handler.clone();
        tokio::spawn(async move {
            server::serve_until(logs, &server_args, credentials, route, until, || {
                handler.shutdown()
            })
            .await
        })
    };

    let host = args.telemetry_host.clone();
    match &platform {
        Platform::Lambda(api) => {
            let id = lambda_id.unwrap_or_default();
            let host = host.unwrap_or_else(|| "sandbox.localdomain".to_owned());
            lambda_subscribe(&client, api, &id, &host, telemetry_port).await?;
            tokio::select! {
                outcome = lambda_events(&client, api, &id) => outcome?,
                _ = server::shutdown_signal() => {}
            }
        }
        Platform::FunctionGraph(api) => {
            let host = host.unwrap_or_else(|| "127.0.0.1".to_owned());
            functiongraph_subscribe(&client, api, &host, telemetry_port).await?;
            server::shutdown_signal().await;
        }
        Platform::Standalone => {
            println!(
                "try: curl -s --data-binary '[{{\"time\":\"{}\",\"type\":\"function\",\"record\":\"hello from a pushed batch\"}}]' http://127.0.0.1:{telemetry_port}/",
                chrono::Utc::now().to_rfc3339()
            );
            println!("then: curl -s 'http://{local}/system/logs?name={function}'");
            server::shutdown_signal().await;
        }
    }
    stop.cancel();
    let _ = tokio::join!(receiving, serving);
    Ok(())
}

async fn route(
    req: Request<Incoming>,
    handler: LogHandler<LogStore>,
    store: LogStore,
) -> Response<Body> {
    if let Some(answer) = server::viewer(&req, &handler).await {
        return answer;
    }
    match req.uri().path() {
        "/system/logs" => handler.handle(req).await.map(Either::Left),
        "/system/invocations" if req.method() == Method::GET => invocations(&req, &store),
        "/healthz" => json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
        _ => error(StatusCode::NOT_FOUND, "not found"),
    }
}

/// `GET /system/invocations?name=F[&namespace=N][&since=S][&limit=L]`: the function's
/// invocation records, newest first (at most 100 unless `limit` says otherwise).
fn invocations(req: &Request<Incoming>, store: &LogStore) -> Response<Body> {
    let query = req.uri().query().unwrap_or("");
    let request = match faas_logs::Request::from_query(query) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
    };
    let limit = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "limit")
        .last()
        .map(|(_, v)| v.parse::<usize>());
    let limit = match limit {
        None => 100,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid limit: a whole number",
            )
        }
    };
    match store.invocations(&request.namespace, &request.name, request.since, limit) {
        Some(records) => json(StatusCode::OK, &records),
        None => error(
            StatusCode::NOT_FOUND,
            &format!("no function {:?}", request.name),
        ),
    }
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// Sends a request to the platform's API; the answer's head and body.
async fn call(
    client: &HttpClient,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: serde_json::Value,
) -> Result<(http::response::Parts, Bytes), Failure> {
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))?;
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request)).await??;
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await?.to_bytes();
    if !parts.status.is_success() {
        return Err(format!(
            "{url} answered {}: {}",
            parts.status,
            String::from_utf8_lossy(&bytes)
        )
        .into());
    }
    Ok((parts, bytes))
}

/// The function's name in a registration answer.
fn function_name(body: &[u8]) -> Option<String> {
    let answer: serde_json::Value = serde_json::from_slice(body).ok()?;
    answer["functionName"].as_str().map(str::to_owned)
}

async fn lambda_register(
    client: &HttpClient,
    api: &str,
    name: &str,
) -> Result<(String, Option<String>), Failure> {
    let url = format!("http://{api}/2020-01-01/extension/register");
    let body = serde_json::json!({"events": ["INVOKE", "SHUTDOWN"]});
    let (parts, answer) = call(
        client,
        Method::POST,
        &url,
        &[("Lambda-Extension-Name", name)],
        body,
    )
    .await?;
    let id = parts
        .headers
        .get("Lambda-Extension-Identifier")
        .and_then(|v| v.to_str().ok())
        .ok_or("the registration answer has no Lambda-Extension-Identifier")?
        .to_owned();
    tracing::info!(%id, "registered as a Lambda extension");
    Ok((id, function_name(&answer)))
}

async fn lambda_subscribe(
    client: &HttpClient,
    api: &str,
    id: &str,
    host: &str,
    port: u16,
) -> Result<(), Failure> {
    // Not `extension`: this process's own output would come back to it.
    let body = serde_json::json!({
        "schemaVersion": "2022-12-13",
        "types": ["platform", "function"],
        "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 100},
        "destination": {"protocol": "HTTP", "URI": format!("http://{host}:{port}")}
    });
    let url = format!("http://{api}/2022-07-01/telemetry");
    call(
        client,
        Method::PUT,
        &url,
        &[("Lambda-Extension-Identifier", id)],
        body,
    )
    .await?;
    tracing::info!("subscribed to the Lambda Telemetry API");
    Ok(())
}

/// Waits for the platform's events until `SHUTDOWN`.
async fn lambda_events(client: &HttpClient, api: &str, id: &str) -> Result<(), Failure> {
    let url = format!("http://{api}/2020-01-01/extension/event/next");
    loop {
        let request = Request::get(&url)
            .header("Lambda-Extension-Identifier", id)
            .body(Full::new(Bytes::new()))?;
        let response = client.request(request).await?;
        let body = response.into_body().collect().await?.to_bytes();
        let event: serde_json::Value = serde_json::from_slice(&body)?;
        match event["eventType"].as_str() {
            Some("SHUTDOWN") => {
                tracing::info!(reason = %event["shutdownReason"], "SHUTDOWN: ending open streams");
                return Ok(());
            }
            Some(kind) => tracing::debug!(kind, "an extension event"),
            None => tracing::warn!(%event, "an extension event without a type"),
        }
    }
}

async fn functiongraph_register(
    client: &HttpClient,
    api: &str,
    name: &str,
    port: u16,
) -> Result<Option<String>, Failure> {
    let url = format!("http://{api}/extension/register");
    let address = format!("127.0.0.1:{port}");
    let headers = [
        ("FunctionGraph-Extension-Name", name),
        ("FunctionGraph-Extension-Address", address.as_str()),
    ];
    let (_, answer) = call(client, Method::POST, &url, &headers, serde_json::json!({})).await?;
    tracing::info!("registered as a FunctionGraph extension");
    Ok(function_name(&answer))
}

async fn functiongraph_subscribe(
    client: &HttpClient,
    api: &str,
    host: &str,
    port: u16,
) -> Result<(), Failure> {
    let body = serde_json::json!({
        "subscriber": {"protocol": "POST", "uri": format!("http://{host}:{port}")},
        "types": ["platform", "function", "extension"]
    });
    call(
        client,
        Method::POST,
        &format!("http://{api}/telemetry"),
        &[],
        body,
    )
    .await?;
    tracing::info!("subscribed to FunctionGraph's telemetry");
    Ok(())
}
