//! The `http` trigger: one HTTP request per firing.
//!
//! Fields: `url` (required, http or https), `method` (default `POST`; GET, POST, PUT, PATCH,
//! DELETE, HEAD), `headers` (name → value), `payload` (parameters building a JSON object body
//! from `{}`; no payload: no body), `parameters` (applied to this `http` spec itself, e.g.
//! `dest: url`), `timeout` (seconds, default 60, at most 600).
//! The request succeeds when the response status is in `policy.status.allow` when the trigger
//! sets it, else when it is 2xx (deliberately stricter than Argo, which accepts any answer
//! without a policy: a 500 is retried per `retryStrategy` instead of recorded as done).
//! `secureHeaders`, `basicAuth` and `tls` read Secrets cairn does not resolve here yet: a
//! trigger using them is unsupported (the Sensor's status says so) rather than sent without.
//!
//! Invariant: URLs in errors and history carry no userinfo.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use super::{Firing, TriggerError};
use crate::events::history::OutcomeResult;
use crate::events::params;
use crate::events::types::{TriggerParameter, TriggerTemplate};

/// Default request timeout (Argo's).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest timeout a trigger may ask for.
const MAX_TIMEOUT: Duration = Duration::from_secs(600);
/// Fields that need Secrets.
const SECRET_FIELDS: &[&str] = &["secureHeaders", "basicAuth", "tls"];

/// Static checks of an `http` trigger (for the Sensor's status).
pub fn check(template: &TriggerTemplate) -> Result<(), String> {
    let spec = template.http.as_ref().unwrap_or(&Value::Null);
    let name = &template.name;
    if let Some(f) = SECRET_FIELDS.iter().find(|f| spec.get(**f).is_some()) {
        return Err(format!(
            "trigger {name}: template.http.{f}: not supported by cairn (credentials from \
             Secrets are not resolved for http triggers)"
        ));
    }
    method(spec).map_err(|m| format!("trigger {name}: template.http.method: {m}"))?;
    let has_url = spec["url"].as_str().is_some_and(|u| !u.is_empty());
    let parameterized = spec["parameters"].as_array().is_some_and(|p| !p.is_empty());
    if !has_url && !parameterized {
        return Err(format!(
            "trigger {name}: template.http.url: a URL is required"
        ));
    }
    Ok(())
}

fn method(spec: &Value) -> Result<Method, String> {
    match spec["method"]
        .as_str()
        .unwrap_or("")
        .to_ascii_uppercase()
        .as_str()
    {
        "" | "POST" => Ok(Method::POST),
        "GET" => Ok(Method::GET),
        "PUT" => Ok(Method::PUT),
        "PATCH" => Ok(Method::PATCH),
        "DELETE" => Ok(Method::DELETE),
        "HEAD" => Ok(Method::HEAD),
        other => Err(format!(
            "{other:?} is not a method (expected GET, POST, PUT, PATCH, DELETE or HEAD)"
        )),
    }
}

/// `url` without userinfo, for messages.
pub fn display_url(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

/// Sends the request of one firing.
pub async fn fire(
    client: &reqwest::Client,
    firing: &Firing<'_>,
    template: &TriggerTemplate,
) -> Result<OutcomeResult, TriggerError> {
    let name = template.name.clone();
    let invalid = |field: &str, message: String| TriggerError::Invalid {
        trigger: name.clone(),
        field: format!("template.http.{field}"),
        message,
    };
    let mut spec = template.http.clone().unwrap_or(Value::Null);
    let own: Vec<TriggerParameter> = match spec.get("parameters") {
        None | Some(Value::Null) => Vec::new(),
        Some(p) => {
            serde_json::from_value(p.clone()).map_err(|e| invalid("parameters", e.to_string()))?
        }
    };
    params::apply(
        &mut spec,
        &own,
        firing.events,
        &name,
        "template.http.parameters",
    )?;
    let method = method(&spec).map_err(|m| invalid("method", m))?;
    let raw_url = spec["url"].as_str().unwrap_or_default();
    let url = reqwest::Url::parse(raw_url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| invalid("url", "expected an http or https URL".into()))?;
    let shown = display_url(&url);
    let timeout = spec["timeout"]
        .as_u64()
        .map(Duration::from_secs)
        .filter(|t| !t.is_zero())
        .unwrap_or(DEFAULT_TIMEOUT)
        .min(MAX_TIMEOUT);
    let mut req = client.request(method.clone(), url).timeout(timeout);
    if let Some(headers) = spec["headers"].as_object() {
        for (k, v) in headers {
            let Some(v) = v.as_str() else {
                return Err(invalid(&format!("headers.{k}"), "expected a string".into()));
            };
            req = req.header(k.as_str(), v);
        }
    }
    let payload: Vec<TriggerParameter> = match spec.get("payload") {
        None | Some(Value::Null) => Vec::new(),
        Some(p) => {
            serde_json::from_value(p.clone()).map_err(|e| invalid("payload", e.to_string()))?
        }
    };
    if !payload.is_empty() {
        let mut body = Value::Object(Default::default());
        params::apply(
            &mut body,
            &payload,
            firing.events,
            &name,
            "template.http.payload",
        )?;
        req = req
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
    }
    let http_err = |message: String| TriggerError::Http {
        trigger: name.clone(),
        method: method.to_string(),
        url: shown.clone(),
        message,
    };
    let resp = req
        .send()
        .await
        .map_err(|e| http_err(format!("request failed: {}", e.without_url())))?;
    let status = resp.status().as_u16();
    let allow: Option<Vec<u64>> = firing
        .trigger
        .policy
        .as_ref()
        .and_then(|p| p["status"]["allow"].as_array())
        .map(|a| a.iter().filter_map(Value::as_u64).collect());
    let ok = match &allow {
        Some(list) => list.contains(&u64::from(status)),
        None => (200..300).contains(&status),
    };
    if !ok {
        return Err(http_err(format!(
            "answered {status} (accepted: {})",
            allow.map_or("2xx".to_owned(), |a| format!("{a:?}"))
        )));
    }
    Ok(OutcomeResult::Done {
        detail: format!("{method} {shown} -> {status}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn checks_name_the_field() {
        let t = |v: Value| -> TriggerTemplate {
            serde_json::from_value(json!({"name": "h", "http": v})).expect("t")
        };
        assert!(check(&t(json!({"url": "http://x/y"}))).is_ok());
        let e = check(&t(json!({}))).expect_err("url");
        assert!(e.contains("template.http.url"), "{e}");
        let e = check(&t(json!({"url": "http://x", "method": "BREW"}))).expect_err("m");
        assert!(e.contains("template.http.method"), "{e}");
        let e = check(&t(json!({"url": "http://x", "basicAuth": {}}))).expect_err("auth");
        assert!(
            e.contains("basicAuth") && e.contains("not supported"),
            "{e}"
        );
    }

    #[test]
    fn urls_are_shown_without_credentials() {
        let u = reqwest::Url::parse("https://user:pw@example.com/hook?x=1").expect("url");
        assert_eq!(display_url(&u), "https://example.com/hook?x=1");
    }
}
