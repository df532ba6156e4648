//! `flowd run`'s raw HTTP event: method, headers, query and a body of any bytes, handed
//! to an http trigger as the listener would, so a trigger that verifies a signature or
//! parses a form can be run locally.

use crate::config::{Flow, TriggerKind};
use crate::plugin::TriggerEvent;
use clap::Args;
use std::io::Read;

#[derive(Args, Default)]
pub struct HttpEventArgs {
    /// The HTTP method of the event: the trigger's (checked, as the daemon checks it).
    /// Needs an http trigger.
    #[arg(long, value_name = "METHOD")]
    method: Option<String>,
    /// A request header, `Name: value` (repeatable). Needs an http trigger.
    #[arg(long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// The raw query string, without the `?`. Needs an http trigger.
    #[arg(long, value_name = "QUERY")]
    query: Option<String>,
    /// The request body as it is, any bytes (`-` reads stdin). Needs an http trigger.
    #[arg(long, value_name = "FILE|-")]
    body: Option<String>,
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("expected `Name: value`, got {s:?}"))?;
    let name = name.trim();
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !valid {
        return Err(format!("{name:?} is not a header name"));
    }
    Ok((name.to_ascii_lowercase(), value.trim().to_string()))
}

impl HttpEventArgs {
    fn given(&self) -> Option<&'static str> {
        if self.method.is_some() {
            Some("--method")
        } else if !self.headers.is_empty() {
            Some("--header")
        } else if self.query.is_some() {
            Some("--query")
        } else if self.body.is_some() {
            Some("--body")
        } else {
            None
        }
    }

    /// The event these flags describe for `flow`, or `None` when none was given. Without
    /// `--body`, `input` (`--input`'s JSON, `null` without it) is the body, sent as JSON.
    pub fn event(&self, flow: &Flow, input: &serde_json::Value) -> Result<Option<TriggerEvent>, String> {
        let Some(flag) = self.given() else { return Ok(None) };
        let TriggerKind::Http { path, method, .. } = &flow.trigger.kind else {
            return Err(format!(
                "{flag} needs a flow with an http trigger; \"{}\" has none",
                flow.name
            ));
        };
        if let Some(asked) = &self.method
            && !asked.eq_ignore_ascii_case(method)
        {
            return Err(format!(
                "--method {asked}: flow \"{}\" takes {method} requests (the daemon answers any other method 405)",
                flow.name
            ));
        }
        let mut headers = self.headers.clone();
        let body = match self.body.as_deref() {
            None if input.is_null() => Vec::new(),
            None => {
                if !headers.iter().any(|(name, _)| name == "content-type") {
                    headers.push(("content-type".into(), "application/json".into()));
                }
                input.to_string().into_bytes()
            }
            Some("-") => {
                let mut b = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut b)
                    .map_err(|e| format!("--body -: cannot read stdin: {e}"))?;
                b
            }
            Some(file) => std::fs::read(file).map_err(|e| format!("--body {file}: cannot read: {e}"))?,
        };
        Ok(Some(TriggerEvent::Http {
            method: method.clone(),
            path: path.clone(),
            query: self.query.clone().unwrap_or_default(),
            headers,
            body,
        }))
    }
}
