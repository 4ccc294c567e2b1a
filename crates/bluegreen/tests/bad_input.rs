//! Hostile input, table-driven: every row of `events/bad-input/*.json` is a bad input to one
//! of the parsers of outside input, with the exact answer it gets. The same files seed the
//! fuzz corpus (`make fuzz`).
//!
//! - `execution-input.json`: the execution input (what `validate` refuses as `InvalidInput`);
//! - `catalogue.json`: the deployment catalogue (what the trigger and `make catalogue-check`
//!   refuse);
//! - `ecr-event.json`: EventBridge events (refused, or ignored with the reason logged);
//! - `webhook.json`: webhook requests, after authentication (the HTTP status and message);
//! - `rotation-event.json`: what `rotate-secret` is invoked with.
//!
//! `BLESS=1 cargo test -p bluegreen --test bad_input` rewrites the expected answers from what
//! the code answers now; review the diff before committing it.

use std::path::PathBuf;

use bluegreen::Error;
use bluegreen::model::DeployRequest;
use bluegreen::rotation::RotateInput;
use bluegreen::trigger::catalogue::Catalogue;
use bluegreen::trigger::ecr::{PushPlan, read_push};
use bluegreen::trigger::webhook::read_event;
use serde_json::{Value, json};

fn events() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

fn read(path: &str) -> Value {
    let file = events().join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// Runs every row of `events/bad-input/<file>` through `answer` and compares the fields it
/// answers with the row's; with `BLESS=1` writes the answers into the file instead.
fn table(file: &str, answer: impl Fn(&Value) -> Value) {
    let path = format!("bad-input/{file}");
    let mut rows = read(&path);
    let bless = std::env::var("BLESS").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    let list = rows.as_array_mut().expect("a table is an array of rows");
    assert!(list.len() >= 5, "{path}: only {} rows", list.len());
    for row in list.iter_mut() {
        let case = row["case"].as_str().unwrap_or("?").to_string();
        let got = answer(row);
        for (field, value) in got.as_object().expect("answers are objects") {
            if bless {
                row[field] = value.clone();
            } else if row.get(field) != Some(value) {
                failures.push(format!(
                    "{path}: {case}: {field}\n  expected: {}\n  got:      {value}",
                    row.get(field).unwrap_or(&Value::Null)
                ));
            }
        }
    }
    if bless {
        let text = serde_json::to_string_pretty(&rows).expect("JSON") + "\n";
        std::fs::write(events().join(&path), text).expect("writing the blessed table");
        return;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// An error's stable type and message.
fn refusal(e: &Error) -> Value {
    json!({ "errorType": e.error_type(), "error": e.to_string() })
}

#[test]
fn bad_execution_inputs_are_refused_with_the_field_and_the_reason() {
    table("execution-input.json", |row| {
        match DeployRequest::parse(row["input"].clone()) {
            Ok(_) => json!({ "error": "accepted" }),
            Err(e) => refusal(&e),
        }
    });
}

#[test]
fn bad_catalogues_are_refused_naming_the_entry_and_the_field() {
    table("catalogue.json", |row| {
        let text = row["input"]
            .as_str()
            .expect("a catalogue row's input is the file's text");
        match Catalogue::parse(text, "catalogue.json") {
            Ok(_) => json!({ "error": "accepted" }),
            Err(e) => refusal(&e),
        }
    });
}

#[test]
fn bad_or_foreign_ecr_events_are_refused_or_ignored_with_the_reason() {
    let catalogue = Catalogue::parse(
        &std::fs::read_to_string(events().join("trigger/catalogue.json"))
            .expect("the sample catalogue"),
        "catalogue.json",
    )
    .expect("the sample catalogue is valid");
    table("ecr-event.json", |row| {
        match read_push(&catalogue, row["input"].clone()) {
            Ok(PushPlan::Ignored(outcome)) => json!({ "ignored": outcome.ignored }),
            Ok(PushPlan::Deploy { .. }) => json!({ "error": "deploys", "ignored": "deploys" }),
            Err(e) => refusal(&e),
        }
    });
}

#[test]
fn bad_webhook_requests_get_their_4xx_and_a_precise_message() {
    let template = read("trigger/webhook-start.json");
    table("webhook.json", |row| {
        let r = &row["request"];
        let mut event = template.clone();
        if let Some(m) = r.get("method") {
            event["requestContext"]["http"]["method"] = m.clone();
        }
        if let Some(p) = r.get("path") {
            event["rawPath"] = p.clone();
            event["requestContext"]["http"]["path"] = p.clone();
        }
        if let Some(b) = r.get("body") {
            event["body"] = b.clone();
        }
        if let Some(c) = r.get("contentType") {
            event["headers"]["content-type"] = c.clone();
        }
        if let Some(b) = r.get("base64") {
            event["isBase64Encoded"] = b.clone();
        }
        match read_event(event) {
            Ok(Err(answer)) => json!({
                "status": answer.status,
                "message": answer.body["message"],
            }),
            Ok(Ok(request)) => json!({ "status": 0, "message": format!("accepted: {request:?}") }),
            Err(e) => json!({ "status": 0, "message": e.to_string() }),
        }
    });
}

#[test]
fn bad_rotation_events_are_refused_with_what_is_expected() {
    table("rotation-event.json", |row| {
        match RotateInput::parse(row["input"].clone()) {
            Ok(_) => json!({ "error": "accepted" }),
            Err(e) => refusal(&e),
        }
    });
}
