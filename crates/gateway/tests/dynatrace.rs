//! The fake Dynatrace API over HTTP: the gateway's router served in-process on a free
//! loopback port, called with reqwest as a Dynatrace client would.

use std::sync::Arc;

use gateway::Config;
use gateway::server::{AppState, router};
use serde_json::{Value, json};

struct Fake {
    http: reqwest::Client,
    base: String,
}

impl Fake {
    async fn start() -> Fake {
        let state = Arc::new(AppState::new(Config::default()).expect("an app state"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free loopback port");
        let addr = listener.local_addr().expect("a local address");
        tokio::spawn(async move { axum::serve(listener, router(state)).await });
        Fake {
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("a client"),
            base: format!("http://{addr}"),
        }
    }

    /// `POST /_local/dynatrace/tokens`, answering the new token's value.
    async fn seed(&self, name: &str, scopes: &[&str]) -> String {
        let answer = self
            .http
            .post(format!("{}/_local/dynatrace/tokens", self.base))
            .json(&json!({"name": name, "scopes": scopes}))
            .send()
            .await
            .expect("the control endpoint answers");
        assert_eq!(answer.status(), 201);
        let body: Value = answer.json().await.expect("json");
        body["token"]
            .as_str()
            .expect("a generated token")
            .to_owned()
    }

    async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/dynatrace{path}", self.base));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Api-Token {token}"));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.expect("the fake answers");
        let status = answer.status().as_u16();
        let text = answer.text().await.expect("a body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("json")
        };
        (status, body)
    }

    async fn control(&self, path: &str) -> Value {
        self.http
            .get(format!("{}/_local/dynatrace/{path}", self.base))
            .send()
            .await
            .expect("the control endpoint answers")
            .json()
            .await
            .expect("json")
    }
}

#[tokio::test]
async fn a_rotation_and_a_verification_round_trip_through_the_fake_api() {
    let fake = Fake::start().await;
    use reqwest::Method;

    // Given an admin token seeded through the control endpoint
    let admin = fake
        .seed("local-admin", &["apiTokens.read", "apiTokens.write"])
        .await;

    // When a token is minted through the Access tokens API
    let (status, created) = fake
        .api(
            Method::POST,
            "/api/v2/apiTokens",
            Some(&admin),
            Some(json!({"name": "deploy-verify", "scopes": ["metrics.read", "events.ingest"], "expirationDate": "now+30d"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().expect("a token").to_owned();
    let id = created["id"].as_str().expect("an id").to_owned();
    assert!(token.starts_with(&format!("{id}.")), "id is dt0c01.PUBLIC");

    // Then it reads metrics the control endpoint set, scoped to a release
    fake.http
        .post(format!("{}/_local/dynatrace/metrics", fake.base))
        .json(&json!({"metricSelectorContains": "builtin:service.errors.total.rate", "releaseVersion": "sha256:green", "values": [0.5, 9.0]}))
        .send()
        .await
        .expect("a rule");
    let query = "/api/v2/metrics/query?metricSelector=builtin%3Aservice.errors.total.rate%3AsplitBy%28%29%3Aavg&resolution=Inf&from=now-5m&entitySelector=type%28PROCESS_GROUP_INSTANCE%29%2CreleasesVersion%28%22sha256%3Agreen%22%29";
    let (status, answer) = fake.api(Method::GET, query, Some(&token), None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"][0]["data"][0]["values"], json!([0.5]));
    let (_, answer) = fake.api(Method::GET, query, Some(&token), None).await;
    assert_eq!(answer["result"][0]["data"][0]["values"], json!([9.0]));
    let queries = fake.control("queries").await;
    assert_eq!(
        queries["queries"][0]["releaseVersion"],
        json!("sha256:green")
    );

    // And posts a deployment event, which the control endpoint shows as received
    let event = json!({"eventType": "CUSTOM_DEPLOYMENT", "title": "orders: canary started", "properties": {"dt.event.deployment.version": "sha256:green"}});
    let (status, ingested) = fake
        .api(
            Method::POST,
            "/api/v2/events/ingest",
            Some(&token),
            Some(event.clone()),
        )
        .await;
    assert_eq!(status, 201, "{ingested}");
    assert_eq!(ingested["eventIngestResults"][0]["status"], json!("OK"));
    assert_eq!(fake.control("events").await["events"][0]["event"], event);

    // And its metadata is found by its value, with any scope
    let (status, meta) = fake
        .api(
            Method::POST,
            "/api/v2/apiTokens/lookup",
            Some(&token),
            Some(json!({"token": token})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(meta["id"], json!(id));
    assert_eq!(meta["name"], json!("deploy-verify"));

    // But it cannot manage tokens
    let (status, forbidden) = fake
        .api(Method::GET, "/api/v2/apiTokens", Some(&token), None)
        .await;
    assert_eq!(status, 403);
    assert_eq!(forbidden["error"]["code"], json!(403));

    // When the admin revokes it, it is rejected with Dynatrace's 401 envelope
    let (status, _) = fake
        .api(
            Method::PUT,
            &format!("/api/v2/apiTokens/{id}"),
            Some(&admin),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, 204);
    let (status, rejected) = fake.api(Method::GET, query, Some(&token), None).await;
    assert_eq!(status, 401);
    assert_eq!(rejected["error"]["code"], json!(401));
    assert!(!rejected.to_string().contains(&token));

    // And the control listing never shows a token value
    let listing = fake.control("tokens").await.to_string();
    assert!(listing.contains(&id));
    assert!(!listing.contains(&token) && !listing.contains(&admin));
}

#[tokio::test]
async fn unknown_paths_missing_tokens_and_reset_answer_as_documented() {
    let fake = Fake::start().await;
    use reqwest::Method;

    let (status, body) = fake
        .api(Method::GET, "/api/v1/timeseries", None, None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], json!(404));

    let (status, body) = fake
        .api(
            Method::GET,
            "/api/v2/metrics/query?metricSelector=x",
            None,
            None,
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        body["error"]["message"],
        json!("Missing authorization parameter.")
    );

    let token = fake.seed("reader", &["metrics.read"]).await;
    let reset = fake
        .http
        .post(format!("{}/_local/dynatrace/reset", fake.base))
        .send()
        .await
        .expect("reset answers");
    assert_eq!(reset.status(), 200);
    let (status, _) = fake
        .api(
            Method::GET,
            "/api/v2/metrics/query?metricSelector=x",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, 401, "reset forgets seeded tokens");
    assert_eq!(fake.control("tokens").await, json!({"tokens": []}));
}
