//! Every sample payload in `events/` parses into the type its step takes, so the samples and
//! the documentation built on them cannot drift from the code.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use bluegreen::lambda::parse_payload;
use bluegreen::model::DeployRequest;
use bluegreen::steps::verify_health::{Phase, VerifyHealthInput};
use bluegreen::steps::{
    DrainAction, DrainBlueInput, RouteChoice, ShiftTrafficInput, StepInput, ValidateInput,
    ValidateOutput,
};

fn events() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

fn load(rel: &str) -> serde_json::Value {
    let path = events().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_deploy_sample_is_a_valid_execution_input_except_the_invalid_ones() {
    let mut seen = 0;
    for entry in std::fs::read_dir(events().join("deploy")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let value = load(&format!("deploy/{name}"));
        let parsed = DeployRequest::parse(value);
        if name.starts_with("invalid-") {
            let err = parsed.expect_err(&name);
            assert_eq!(err.error_type(), "InvalidInput", "{name}");
        } else {
            parsed.unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        seen += 1;
    }
    assert!(seen >= 5, "expected the deploy samples, found {seen}");
}

#[test]
fn the_validate_samples_agree_with_each_other() {
    let input: ValidateInput = parse_payload(load("validate/input.json")).unwrap();
    let expected: ValidateOutput = parse_payload(load("validate/output.json")).unwrap();
    let deployment = DeployRequest::parse(input.request)
        .unwrap()
        .into_deployment(&input.execution_name, input.execution_arn.as_deref())
        .unwrap();
    assert_eq!(deployment, expected.deployment);
}

#[test]
fn every_step_sample_parses_into_its_step_input() {
    parse_payload::<StepInput>(load("create-green/input.json")).unwrap();
    for (file, phase) in [
        ("launch", Phase::Launch),
        ("step", Phase::Step),
        ("approval", Phase::Approval),
    ] {
        let input: VerifyHealthInput =
            parse_payload(load(&format!("verify-health/{file}.json"))).unwrap();
        assert_eq!(input.phase, phase, "{file}");
    }
    let shift: ShiftTrafficInput = parse_payload(load("shift-traffic/input.json")).unwrap();
    assert_eq!(
        (shift.green_weight, shift.route),
        (100, RouteChoice::Production)
    );
    let back: ShiftTrafficInput = parse_payload(load("shift-traffic/rollback.json")).unwrap();
    assert_eq!((back.green_weight, back.route), (0, RouteChoice::All));
    for (file, action) in [
        ("promote", DrainAction::Promote),
        ("removeBlue", DrainAction::RemoveBlue),
        ("restoreBlue", DrainAction::RestoreBlue),
        ("removeGreen", DrainAction::RemoveGreen),
    ] {
        let input: DrainBlueInput =
            parse_payload(load(&format!("drain-blue/{file}.json"))).unwrap();
        assert_eq!(input.action, action);
    }
}

#[test]
fn every_rotation_sample_is_an_input_rotate_secret_takes() {
    use bluegreen::rotation::{RotateInput, Rotation};
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        let input = RotateInput::parse(load(&format!("rotate-secret/{step}.json"))).unwrap();
        assert!(matches!(input, RotateInput::Step(_)), "{step}");
    }
    for action in ["findConsumers", "checkRedeploys", "revokePrevious"] {
        let input = RotateInput::parse(load(&format!("rotate-secret/{action}.json"))).unwrap();
        assert!(matches!(input, RotateInput::Workflow(_)), "{action}");
    }
    parse_payload::<Rotation>(load("rotate-secret/rotation-workflow.json")).unwrap();
}
