//! `--template`: each line written with a Jinja2 template (minijinja), with the
//! message's fields: `name`, `namespace`, `instance`, `timestamp` (RFC 3339, as sent),
//! `time` (as `--time-format`, `--timestamps` and `--timezone` write it), `text`,
//! `stream`, and a structured record's `severity`, `trace_id`, `span_id` and
//! `attributes`; a field the line lacks is empty.

use faas_logs::codec::Rfc3339;
use faas_logs::{Message, OutputStream};
use minijinja::value::{Serde, Value};
use minijinja::Environment;

/// A compiled `--template`, compiled once as the command line is read (one that does
/// not compile is a bad command line).
#[derive(Clone, Debug)]
pub(crate) struct LineTemplate {
    env: Environment<'static>,
}

impl LineTemplate {
    /// Compiles `source`; a syntax error is told with where it is.
    pub(crate) fn new(source: &str) -> Result<Self, String> {
        let mut env = Environment::new();
        // A field a line lacks is empty, and so is anything read through it
        // (`attributes.user` on a line without attributes).
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        env.add_template_owned("line", source.to_owned())
            .map_err(|e| format!("the template does not compile: {e}"))?;
        Ok(LineTemplate { env })
    }

    /// `m` written with the template, `time` being its formatted timestamp.
    pub(crate) fn render(&self, m: &Message, time: &str) -> Result<String, String> {
        let details = m.details.as_deref();
        let stream = m.stream.map(|s| match s {
            OutputStream::Stderr => "stderr",
            _ => "stdout",
        });
        let context = minijinja::context! {
            name => &*m.name,
            namespace => &*m.namespace,
            instance => &*m.instance,
            timestamp => Rfc3339::new(&m.timestamp).as_str(),
            time => time,
            text => m.text.trim_end_matches('\n'),
            stream => field(stream),
            severity => field(details.and_then(|d| d.severity.as_deref())),
            trace_id => field(details.and_then(|d| d.trace_id.as_deref())),
            span_id => field(details.and_then(|d| d.span_id.as_deref())),
            attributes => details.map_or(Value::UNDEFINED, |d| Value::from(Serde(&d.attributes))),
        };
        let template = self.env.get_template("line").map_err(|e| e.to_string())?;
        template
            .render(context)
            .map_err(|e| format!("--template failed on a line: {e}"))
    }
}

/// A field a line may lack: undefined when it does, so that it prints as nothing and
/// `default(...)` and `or` apply.
fn field(value: Option<&str>) -> Value {
    value.map_or(Value::UNDEFINED, Value::from)
}
