//! An admin session on a lab test's `cairn server` (the initial admin password from its data
//! directory, a password login, the session cookie), for tests that read the API as a person.

use std::time::Duration;

use serde_json::{Value, json};

use crate::lab;

/// An admin session on the server's API.
pub struct Session {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

impl Session {
    pub async fn open(server: &lab::Server) -> Session {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");
        let base = format!("http://{}", server.api());
        let password = std::fs::read_to_string(server.data_dir().join("initial-admin-password"))
            .expect("initial admin password");
        let resp = http
            .post(format!("{base}/api/v1/session"))
            .header(cairn::api::CSRF_HEADER, "1")
            .json(&json!({"username": "admin", "password": password.trim()}))
            .send()
            .await
            .expect("login");
        assert!(resp.status().is_success(), "login: {}", resp.status());
        let cookie = resp
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|c| c.split(';').next())
            .find(|kv| kv.contains(cairn::api::SESSION_COOKIE))
            .expect("session cookie")
            .to_owned();
        Session { http, base, cookie }
    }

    /// GET `path`: (status, JSON body or Null).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header(reqwest::header::COOKIE, &self.cookie)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}
