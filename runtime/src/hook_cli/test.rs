//! `sluice hook test`: run one hook offline, through the host's own chain
//! runner, on messages given on the command line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_core::auth::{Identity, Scheme};
use sluice_core::exchange::methods::Phase;
use sluice_core::jsonrpc::{self, Classified, Kind};

use super::check::phase_name;
use super::{LoadArgs, Logs, drain, exit, load, logs_json, micros, print_logs};
use crate::hooks::{ChainOutcome, ChainReport, HookContext, HookHost, HookRunResult, LogLevel};

/// The phases this release of the host runs hooks in, in the order a
/// message meets them; `hook check` says so of the others.
pub(super) const HOST_RUNS: &[Phase] = &[
    Phase::Request,
    Phase::Response,
    Phase::ServerMessage,
    Phase::ClientAnswer,
];

/// `sluice hook test FILE.wasm (--request JSON [--response JSON] |
/// --server-message JSON) …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestArgs {
    /// How to load the hook.
    pub load: LoadArgs,
    /// What to run it on.
    pub messages: Messages,
    /// `context.upstream`.
    pub upstream: String,
    /// `context.session-id`.
    pub session_id: Option<String>,
    /// `context.protocol-version`.
    pub protocol_version: Option<String>,
    /// The client's request headers, (name, value) in order.
    pub headers: Vec<(String, String)>,
    /// `context.identity` (0.2.0 hooks).
    pub identity: Option<Identity>,
    /// Calls after the first, for the warm figure.
    pub repeat: u32,
    /// One JSON object on stdout instead of text.
    pub json: bool,
}

/// The messages a test runs the hook on, as JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Messages {
    /// A client's request (or notification), and the upstream's response
    /// to it: the request and response phases.
    Client {
        /// The request.
        request: String,
        /// The response.
        response: Option<String>,
    },
    /// A server's request or notification on its way to the client, and
    /// the client's answer to it: the server-message and client-answer
    /// phases.
    Server {
        /// The message.
        message: String,
        /// The answer.
        answer: Option<String>,
    },
}

/// The `--identity` JSON: the fields of the WIT's `identity` record.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityJson {
    #[serde(default)]
    scheme: Option<String>,
    subject: String,
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default, alias = "client-id")]
    client_id: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    claims: Option<serde_json::Map<String, Value>>,
}

/// Read `--identity`: `{"scheme": "jwt"|"introspection"|"api-key",
/// "subject": …, "issuer": …, "client_id": …, "scopes": [...], "claims":
/// {...}}`; only `subject` is required, `scheme` defaults to `jwt`.
pub fn parse_identity(text: &str) -> Result<Identity, String> {
    let id: IdentityJson = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let scheme = match id.scheme.as_deref().unwrap_or("jwt") {
        "jwt" => Scheme::Jwt,
        "introspection" => Scheme::Introspection,
        "api-key" | "api_key" => Scheme::ApiKey,
        other => {
            return Err(format!(
                "scheme {other:?} is not one of jwt, introspection, api-key"
            ));
        }
    };
    Ok(Identity {
        scheme,
        subject: id.subject,
        issuer: id.issuer,
        client_id: id.client_id,
        scopes: id.scopes,
        claims: id.claims,
    })
}

/// One message as the proxy reads it.
struct Msg {
    text: String,
    kind: Kind,
    method: Option<String>,
    id: Option<Vec<u8>>,
}

/// A message flag's JSON: as given, or read from the file `@PATH` (`@-`:
/// standard input). JSON text never starts with `@`.
fn message_text(flag: &str, value: &str) -> anyhow::Result<String> {
    use anyhow::Context as _;
    match value.strip_prefix('@') {
        None => Ok(value.to_owned()),
        Some("-") => std::io::read_to_string(std::io::stdin())
            .with_context(|| format!("{flag}: reading standard input")),
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("{flag}: reading {path}"))
        }
    }
}

fn read_message(flag: &str, value: &str) -> anyhow::Result<Msg> {
    let limits = jsonrpc::Limits::default();
    let text = message_text(flag, value)?;
    let text = text.trim();
    match jsonrpc::classify(text.as_bytes(), &limits) {
        Ok(Classified::Single(m)) => Ok(Msg {
            text: m.text.to_owned(),
            kind: m.kind,
            method: m.method.map(|m| m.into_owned()),
            id: m.id.map(<[u8]>::to_vec),
        }),
        Ok(Classified::Batch(_)) => bail!(
            "{flag}: give one message (the proxy hands each element of a batch to hooks on its own)"
        ),
        Err(e) => bail!("{flag}: not a JSON-RPC message the proxy would read: {e}"),
    }
}

/// One phase of the run: which host runner it takes and with what.
enum Step<'a> {
    /// The client's request, on its way upstream.
    Request { request: &'a str },
    /// The upstream's response, with the request as it was forwarded.
    Response { request: &'a str, response: &'a str },
    /// A server's request or notification, on its way to the client.
    ServerMessage { message: &'a str },
    /// The client's answer, with the server's request as the client got it.
    ClientAnswer { request: &'a str, answer: &'a str },
}

impl Step<'_> {
    fn phase(&self) -> Phase {
        match self {
            Step::Request { .. } => Phase::Request,
            Step::Response { .. } => Phase::Response,
            Step::ServerMessage { .. } => Phase::ServerMessage,
            Step::ClientAnswer { .. } => Phase::ClientAnswer,
        }
    }

    /// The message the hook is handed (the one its verdict is about).
    fn message(&self) -> &str {
        match self {
            Step::Request { request } => request,
            Step::Response { response, .. } => response,
            Step::ServerMessage { message } => message,
            Step::ClientAnswer { answer, .. } => answer,
        }
    }

    fn run(&self, host: &HookHost, ctx: &HookContext, method: &str) -> ChainReport {
        match *self {
            Step::Request { request } => host.run_request(ctx, method, request),
            Step::Response { request, response } => {
                host.run_response(ctx, method, request, response)
            }
            Step::ServerMessage { message } => host.run_server_message(ctx, method, message),
            Step::ClientAnswer { request, answer } => {
                host.run_client_answer(ctx, method, request, answer)
            }
        }
    }
}

/// Who a message goes on to, or who answers it, in `phase`.
fn forward_to(phase: Phase) -> &'static str {
    match phase {
        Phase::Request | Phase::ClientAnswer => "upstream",
        Phase::Response | Phase::ServerMessage => "client",
    }
}

/// Who gets the answer a hook gives in `phase` in the message's place:
/// the sender of a request, the server for a client's answer.
fn answered(phase: Phase) -> &'static str {
    match phase {
        Phase::Request | Phase::Response => "client",
        Phase::ServerMessage | Phase::ClientAnswer => "upstream",
    }
}

/// What the proxy does with the message once the chain has spoken.
enum Then {
    /// Sends this on ([`forward_to`]); `changed` when a hook replaced it.
    Forward { json: String, changed: bool },
    /// Answers [`answered`] with this instead.
    Answer(String),
    /// A client's notification refused: HTTP 400 carrying this error.
    Refused(String),
    /// A client's notification answered by a hook: 202 Accepted, sent
    /// nowhere.
    Consumed,
    /// A server's notification stopped: nobody sees it, nobody is answered.
    Dropped,
}

/// A phase's result.
struct Ran {
    phase: Phase,
    /// Why it was not called, when it was not.
    skipped: Option<String>,
    report: Option<ChainReport>,
    then: Then,
    logs: Vec<(LogLevel, String)>,
    cold: Duration,
    warm: Vec<Duration>,
}

fn then(phase: Phase, msg: &str, id: Option<&[u8]>, outcome: &ChainOutcome) -> Then {
    match outcome {
        ChainOutcome::Continue => Then::Forward {
            json: msg.to_owned(),
            changed: false,
        },
        ChainOutcome::Replaced(json) => Then::Forward {
            json: json.clone(),
            changed: true,
        },
        ChainOutcome::Reject {
            code,
            message,
            data,
        } => {
            let answer =
                jsonrpc::error_message(id, *code, message, data.as_deref().map(str::as_bytes));
            let answer = String::from_utf8_lossy(&answer).into_owned();
            match (id, phase) {
                (None, Phase::ServerMessage) => Then::Dropped,
                (None, _) => Then::Refused(answer),
                (Some(_), _) => Then::Answer(answer),
            }
        }
        ChainOutcome::Respond(result) => match (id, phase) {
            (Some(id), _) => Then::Answer(
                String::from_utf8_lossy(&jsonrpc::result_message(id, result.as_bytes()))
                    .into_owned(),
            ),
            // The host refuses it on a server's notification.
            (None, Phase::ServerMessage) => Then::Dropped,
            (None, _) => Then::Consumed,
        },
    }
}

/// Why the hook is not called for `method` in `phase`, if it is not.
fn not_called(host: &HookHost, method: &str, phase: Phase) -> Option<String> {
    let methods = host.methods();
    let hook = methods.first()?;
    if hook.wants(method, phase) {
        return None;
    }
    let world = host.hooks().first().map_or("", |h| h.world);
    Some(
        if phase.is_server_to_client() && world == "sluice:hook@0.1.0" {
            format!(
                "a {world} hook has no {} phase (sluice:hook@0.2.0 does)",
                phase_name(phase)
            )
        } else if hook.declared().matches(method, phase) {
            format!(
                "--methods does not cover {method:?} in the {} phase",
                phase_name(phase)
            )
        } else {
            format!(
                "its methods() does not cover {method:?} in the {} phase",
                phase_name(phase)
            )
        },
    )
}

fn run_step(
    host: &HookHost,
    ctx: &HookContext,
    method: &str,
    id: Option<&[u8]>,
    step: &Step<'_>,
    logs: &Logs,
    repeat: u32,
) -> Ran {
    let phase = step.phase();
    if let Some(why) = not_called(host, method, phase) {
        return Ran {
            phase,
            skipped: Some(why),
            report: None,
            then: Then::Forward {
                json: step.message().to_owned(),
                changed: false,
            },
            logs: Vec::new(),
            cold: Duration::ZERO,
            warm: Vec::new(),
        };
    }
    let t0 = Instant::now();
    let report = step.run(host, ctx, method);
    let cold = t0.elapsed();
    let lines = drain(logs);
    let warm = (0..repeat)
        .map(|_| {
            let t = Instant::now();
            let _ = step.run(host, ctx, method);
            t.elapsed()
        })
        .collect();
    // The repeats' lines are the first call's again.
    drain(logs);
    Ran {
        phase,
        skipped: None,
        then: then(phase, step.message(), id, &report.outcome),
        report: Some(report),
        logs: lines,
        cold,
        warm,
    }
}

/// The messages of a test, read as the proxy reads them.
enum Input {
    Client {
        request: Msg,
        method: String,
        response: Option<Msg>,
    },
    Server {
        message: Msg,
        method: String,
        answer: Option<Msg>,
    },
}

impl Input {
    fn read(messages: &Messages) -> anyhow::Result<Input> {
        match messages {
            Messages::Client { request, response } => {
                let request = read_message("--request", request)?;
                let Some(method) = request.method.clone() else {
                    bail!("--request: a response is not a request (give it as --response)");
                };
                let response = read_answer("--response", response.as_deref(), &request)?;
                Ok(Input::Client {
                    request,
                    method,
                    response,
                })
            }
            Messages::Server { message, answer } => {
                let message = read_message("--server-message", message)?;
                let Some(method) = message.method.clone() else {
                    bail!(
                        "--server-message: give a server's request or notification (an answer \
                         to a client's request is --response)"
                    );
                };
                let answer = read_answer("--client-answer", answer.as_deref(), &message)?;
                Ok(Input::Server {
                    message,
                    method,
                    answer,
                })
            }
        }
    }
}

/// The answer given with `flag` to `asked`, if any: a result or error with
/// `asked`'s id, as the proxy would match it.
fn read_answer(flag: &str, value: Option<&str>, asked: &Msg) -> anyhow::Result<Option<Msg>> {
    let Some(value) = value else { return Ok(None) };
    let answer = read_message(flag, value)?;
    if asked.kind == Kind::Notification {
        bail!("{flag}: a notification has no answer");
    }
    if !matches!(answer.kind, Kind::Response | Kind::Error) {
        bail!("{flag}: a request or notification is not an answer");
    }
    if answer.id.as_deref() != asked.id.as_deref() {
        bail!("{flag}: its id is not the request's (the proxy would not match them)");
    }
    Ok(Some(answer))
}

pub(super) fn run(args: &TestArgs) -> anyhow::Result<u8> {
    // Before the load, which may take seconds: bad input fails at once.
    let input = Input::read(&args.messages)?;
    let logs = Logs::default();
    let t0 = Instant::now();
    let host = match load(&args.load, &logs) {
        Ok(host) => host,
        // A script reading --json gets the reason where it reads.
        Err(e) if args.json => {
            let out = json!({
                "file": args.load.file.display().to_string(),
                "loadable": false,
                "error": format!("{e:#}"),
                "exit": exit::ERROR,
            });
            println!("{out:#}");
            return Ok(exit::ERROR);
        }
        Err(e) => return Err(e.context("loading the hook")),
    };
    let load_time = t0.elapsed();
    let load_logs = drain(&logs);
    let info = host.hooks().remove(0);
    let ctx = HookContext {
        session_id: args.session_id.clone(),
        protocol_version: args.protocol_version.clone(),
        upstream: args.upstream.clone(),
        headers: args
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect(),
        identity: args.identity.clone().map(Arc::new),
    };
    let run = |method: &str, id: Option<&[u8]>, step: Step<'_>| {
        run_step(&host, &ctx, method, id, &step, &logs, args.repeat)
    };
    // The message's first phase, then the phase of its answer (when one is
    // given and the first phase let the message through).
    let (method, id, first, answer, skip) = match &input {
        Input::Client {
            request,
            method,
            response,
        } => (
            method,
            request.id.as_deref(),
            Step::Request {
                request: &request.text,
            },
            response.as_ref(),
            (
                "response",
                "the request was answered by the proxy: the upstream never answers it",
            ),
        ),
        Input::Server {
            message,
            method,
            answer,
        } => (
            method,
            message.id.as_deref(),
            Step::ServerMessage {
                message: &message.text,
            },
            answer.as_ref(),
            (
                "client-answer",
                "the server request never reached the client: it has no answer",
            ),
        ),
    };
    let mut ran = vec![run(method, id, first)];
    let mut second_skipped: Option<(&str, &str)> = None;
    if let Some(answer) = answer {
        match &ran[0].then {
            Then::Forward { json, .. } => {
                // The answer's hooks see the message as it went on.
                let went = json.clone();
                let step = match &input {
                    Input::Client { .. } => Step::Response {
                        request: &went,
                        response: &answer.text,
                    },
                    Input::Server { .. } => Step::ClientAnswer {
                        request: &went,
                        answer: &answer.text,
                    },
                };
                ran.push(run(method, id, step));
            }
            _ => second_skipped = Some(skip),
        }
    }
    let code = exit_code(&ran);
    if args.json {
        print_json(
            args,
            &info,
            load_time,
            &load_logs,
            &ran,
            second_skipped,
            code,
        );
    } else {
        print_text(
            args,
            &info,
            load_time,
            &load_logs,
            &ran,
            second_skipped,
            code,
        );
    }
    Ok(code)
}

/// The exit status: a failure first, then what stopped or changed the
/// message, then whether the hook ran at all.
fn exit_code(ran: &[Ran]) -> u8 {
    let results: Vec<&HookRunResult> = ran
        .iter()
        .filter_map(|r| r.report.as_ref())
        .flat_map(|r| r.runs.iter().map(|run| &run.result))
        .collect();
    let any = |f: fn(&HookRunResult) -> bool| results.iter().any(|r| f(r));
    if any(|r| matches!(r, HookRunResult::Failed { .. })) {
        exit::FAILED
    } else if any(|r| matches!(r, HookRunResult::Rejected)) {
        exit::REJECTED
    } else if any(|r| matches!(r, HookRunResult::Responded)) {
        exit::RESPONDED
    } else if any(|r| matches!(r, HookRunResult::Replaced)) {
        exit::REPLACED
    } else if ran.iter().all(|r| r.skipped.is_some()) {
        exit::NOT_CALLED
    } else {
        0
    }
}

fn verdict_json(report: &ChainReport) -> Value {
    let Some(run) = report.runs.first() else {
        return Value::Null;
    };
    if run.audit {
        let mut v = json!({ "verdict": class(&run.result), "audit": true });
        if let HookRunResult::Failed { error, .. } = &run.result {
            v["error"] = json!(error.kind.to_string());
        }
        return v;
    }
    match (&run.result, &report.outcome) {
        (HookRunResult::Continue, _) => json!({ "verdict": "continue" }),
        (HookRunResult::Replaced, ChainOutcome::Replaced(json)) => {
            json!({ "verdict": "replace", "json": json })
        }
        (
            HookRunResult::Rejected,
            ChainOutcome::Reject {
                code,
                message,
                data,
            },
        ) => json!({
            "verdict": "reject",
            "code": code,
            "message": message,
            "data": data.as_deref().map(|d| serde_json::from_str::<Value>(d).unwrap_or(Value::Null)),
        }),
        (HookRunResult::Responded, ChainOutcome::Respond(result)) => json!({
            "verdict": "respond",
            "result": serde_json::from_str::<Value>(result).unwrap_or(Value::Null),
        }),
        (HookRunResult::Failed { error, passed }, _) => json!({
            "verdict": "failed",
            "error": error.kind.to_string(),
            "on_error": if *passed { "pass" } else { "reject" },
        }),
        (other, _) => json!({ "verdict": format!("{other:?}") }),
    }
}

fn then_json(phase: Phase, then: &Then) -> Value {
    let to = forward_to(phase);
    match then {
        Then::Forward { json, changed } => json!({
            "action": if *changed { "forward-replaced" } else { "forward" },
            "to": to,
            "message": json,
        }),
        Then::Answer(json) => json!({ "action": "answer", "to": answered(phase), "message": json }),
        Then::Refused(json) => json!({
            "action": "refuse-notification",
            "to": "client",
            "http_status": 400,
            "message": json,
        }),
        Then::Consumed => json!({ "action": "consume-notification", "http_status": 202 }),
        Then::Dropped => json!({ "action": "drop-notification" }),
    }
}

/// Median and minimum of the warm calls.
fn warm_stats(warm: &[Duration]) -> Option<(Duration, Duration)> {
    let mut sorted = warm.to_vec();
    sorted.sort();
    Some((*sorted.get(sorted.len() / 2)?, *sorted.first()?))
}

#[allow(clippy::too_many_arguments)]
fn print_json(
    args: &TestArgs,
    info: &crate::hooks::HookInfo,
    load_time: Duration,
    load_logs: &[(LogLevel, String)],
    ran: &[Ran],
    second_skipped: Option<(&str, &str)>,
    code: u8,
) {
    let phases: Vec<Value> = ran
        .iter()
        .map(|r| {
            let mut v = json!({
                "phase": phase_name(r.phase),
                "called": r.skipped.is_none(),
                "then": then_json(r.phase, &r.then),
                "logs": logs_json(&r.logs),
            });
            if let Some(why) = &r.skipped {
                v["not_called"] = json!(why);
            }
            if let Some(report) = &r.report {
                v["verdict"] = verdict_json(report);
                v["cold_us"] = json!(r.cold.as_secs_f64() * 1e6);
                if let Some((median, min)) = warm_stats(&r.warm) {
                    v["warm"] = json!({
                        "calls": r.warm.len(),
                        "median_us": median.as_secs_f64() * 1e6,
                        "min_us": min.as_secs_f64() * 1e6,
                    });
                }
            }
            v
        })
        .collect();
    let out = json!({
        "file": args.load.file.display().to_string(),
        "world": info.world,
        "methods": info.declared,
        "identity_ignored": args.identity.is_some() && info.world == "sluice:hook@0.1.0",
        "mode": args.load.enforcement.label(),
        "instances": match args.load.instances {
            crate::hooks::InstanceMode::Fresh => "fresh",
            crate::hooks::InstanceMode::Warm { .. } => "warm",
        },
        "load_us": load_time.as_secs_f64() * 1e6,
        "load_logs": logs_json(load_logs),
        "phases": phases,
        "not_run": second_skipped.map(|(phase, why)| json!({ "phase": phase, "why": why })),
        "exit": code,
    });
    println!("{out:#}");
}

#[allow(clippy::too_many_arguments)]
fn print_text(
    args: &TestArgs,
    info: &crate::hooks::HookInfo,
    load_time: Duration,
    load_logs: &[(LogLevel, String)],
    ran: &[Ran],
    second_skipped: Option<(&str, &str)>,
    code: u8,
) {
    println!(
        "{} ({}), loaded in {}",
        args.load.file.display(),
        info.world,
        micros(load_time)
    );
    print_logs(load_logs, "  log ");
    if args.identity.is_some() && info.world == "sluice:hook@0.1.0" {
        println!(
            "  note: --identity is not given to sluice:hook@0.1.0 hooks (their context has none)"
        );
    }
    for r in ran {
        println!("{}:", phase_name(r.phase));
        if let Some(why) = &r.skipped {
            println!("  not called: {why}");
        }
        if let Some(report) = &r.report {
            print_verdict(report);
            print_logs(&r.logs, "  log ");
            match warm_stats(&r.warm) {
                Some((median, min)) => println!(
                    "  time    cold {}; warm median {}, min {} over {} calls",
                    micros(r.cold),
                    micros(median),
                    micros(min),
                    r.warm.len()
                ),
                None => println!(
                    "  time    cold {} (--repeat N for a warm figure)",
                    micros(r.cold)
                ),
            }
        }
        let to = forward_to(r.phase);
        match &r.then {
            Then::Forward {
                json,
                changed: false,
            } => println!("  then    forwarded to the {to} unchanged: {json}"),
            Then::Forward {
                json,
                changed: true,
            } => println!("  then    forwarded to the {to} as replaced: {json}"),
            Then::Answer(json) if r.phase == Phase::ServerMessage => println!(
                "  then    the client never sees it; the upstream is answered with: {json}"
            ),
            Then::Answer(json) if r.phase == Phase::ClientAnswer => {
                println!("  then    the upstream gets, in the client's stead: {json}")
            }
            Then::Answer(json) => println!("  then    the client is answered with: {json}"),
            Then::Refused(json) => {
                println!("  then    the notification is refused with HTTP 400: {json}")
            }
            Then::Consumed => {
                println!(
                    "  then    the notification is consumed: the client gets 202 Accepted, the upstream nothing"
                )
            }
            Then::Dropped => {
                println!(
                    "  then    the notification is dropped: nobody sees it, nobody is answered"
                )
            }
        }
    }
    if let Some((phase, why)) = second_skipped {
        println!("{phase}:\n  not run: {why}");
    }
    println!("exit {code}");
}

/// The verdict class of a run, as the proxy's audit log names it.
fn class(result: &HookRunResult) -> &'static str {
    match result {
        HookRunResult::Continue => "continue",
        HookRunResult::Replaced => "replace",
        HookRunResult::Rejected => "reject",
        HookRunResult::Responded => "respond",
        HookRunResult::Failed { .. } => "failed",
    }
}

fn print_verdict(report: &ChainReport) {
    let Some(run) = report.runs.first() else {
        return;
    };
    if run.audit {
        // What the proxy knows of an audited hook's verdict: its class.
        println!(
            "  verdict {} (audit mode: logged and counted, not applied)",
            class(&run.result)
        );
        if let HookRunResult::Failed { error, .. } = &run.result {
            println!(
                "          {}; in audit mode a failure stops nothing",
                error.kind
            );
        }
        return;
    }
    match (&run.result, &report.outcome) {
        (HookRunResult::Continue, _) => println!("  verdict continue"),
        (HookRunResult::Replaced, ChainOutcome::Replaced(json)) => {
            println!("  verdict replace {json}")
        }
        (
            HookRunResult::Rejected,
            ChainOutcome::Reject {
                code,
                message,
                data,
            },
        ) => {
            print!("  verdict reject code {code}, message {message:?}");
            match data {
                Some(d) => println!(", data {d}"),
                None => println!(),
            }
        }
        (HookRunResult::Responded, ChainOutcome::Respond(result)) => {
            println!("  verdict respond {result}")
        }
        (HookRunResult::Failed { error, passed }, _) => {
            println!("  verdict FAILED: {}", error.kind);
            if *passed {
                println!("          on_error = pass: the proxy goes on as if it said continue");
            } else {
                println!(
                    "          on_error = reject: the proxy answers with error {}",
                    crate::hooks::HOOK_FAILED_CODE
                );
            }
        }
        (other, outcome) => println!("  verdict {other:?} ({outcome:?})"),
    }
}
