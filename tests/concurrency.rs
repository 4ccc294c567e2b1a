//! End-to-end: one deployment per service (`make e2e`). Two deploys of the same service
//! started at the same time: one wins, the other fails with `DeploymentInProgress` and
//! leaves nothing behind.

use std::collections::BTreeSet;

use aws_sdk_ecs::types::TaskDefinitionStatus;
use aws_sdk_sfn::types::ExecutionStatus;
use bluegreen::model::Strategy;
use e2e::{Stack, expect_status, fast_timing, green_of, rejected_path};
use local_stack::env::{APP_CONTAINER, EnvSpec};
use local_stack::inspect;

#[tokio::test]
async fn of_two_deploys_started_together_one_succeeds_and_the_other_fails_leaving_nothing_behind()
-> anyhow::Result<()> {
    // Given blue on v1
    let stack = Stack::connect().await?;
    let t = stack.environment("two_at_once", EnvSpec::new("")).await?;
    let env = &t.env;

    // When v2 and v3 are deployed at the same time
    let v2 = env.deploy_request(env.tagged_image("v2"), Strategy::AllAtOnce, fast_timing());
    let v3 = env.deploy_request(env.tagged_image("v3"), Strategy::AllAtOnce, fast_timing());
    let (a, b) = tokio::join!(t.deploy(&stack, "v2", &v2), t.deploy(&stack, "v3", &v3));
    let runs = [("v2", a?.outcome), ("v3", b?.outcome)];

    // Then exactly one succeeded, and the other failed with DeploymentInProgress
    let succeeded: Vec<_> = runs.iter().filter(|(_, o)| o.succeeded()).collect();
    assert_eq!(
        succeeded.len(),
        1,
        "exactly one deploy succeeds: {:#?}",
        runs.iter()
            .map(|(tag, o)| (tag, &o.status, &o.error, &o.cause, o.states_entered()))
            .collect::<Vec<_>>()
    );
    let (winner, won) = succeeded[0];
    let (loser, lost) = runs
        .iter()
        .find(|(tag, _)| tag != winner)
        .ok_or_else(|| anyhow::anyhow!("no second deploy"))?;
    expect_status(lost, ExecutionStatus::Failed)?;
    assert_eq!(
        lost.error.as_deref(),
        Some("DeploymentInProgress"),
        "{loser}: {:?}",
        lost.cause
    );
    // It was stopped at Validate, or by CreateGreen settling the race: either way Rejected,
    // never a rollback (which would have touched the winner's traffic).
    let states = lost.states_entered();
    assert_eq!(
        states.last().map(String::as_str),
        Some("Rejected"),
        "{states:?}"
    );
    assert!(
        states == rejected_path() || states == ["Validate", "CreateGreen", "Rejected"],
        "{loser}: {states:?}"
    );
    // And it names the deployment that holds the service
    let winner_execution = won.execution_arn.rsplit(':').next().unwrap_or_default();
    let cause = lost.cause.as_deref().unwrap_or_default();
    assert!(cause.contains(winner_execution), "{cause}");

    // And one task set is left, the winner's, running its image, with all the traffic
    let sets = t.task_sets_once_drained(&stack).await?;
    assert_eq!(sets.len(), 1, "{sets:?}");
    let (winner_id, winner_td) = green_of(won)?;
    assert_eq!(sets[0].id, winner_id);
    assert_eq!(sets[0].status, "PRIMARY");
    assert_eq!(sets[0].task_definition_arn, winner_td);
    let app = inspect::container(&stack.clients, &winner_td, APP_CONTAINER).await?;
    assert_eq!(app.image(), Some(env.pinned_image(winner)?.as_str()));
    let tg = sets[0]
        .target_group_arns
        .first()
        .cloned()
        .unwrap_or_default();
    let w = inspect::weights(&stack.clients, &env.route()).await?;
    assert_eq!(inspect::weight_of(&w, &tg), 100, "{w:?}");
    assert_eq!(w.iter().map(|x| x.weight).sum::<i32>(), 100, "{w:?}");

    // And the family's ACTIVE revisions are exactly blue's original and the winner's: the
    // loser registered none, or deregistered the one it registered
    let active: BTreeSet<String> = inspect::task_definition_arns(
        &stack.clients,
        &env.task_definition_family,
        TaskDefinitionStatus::Active,
    )
    .await?
    .into_iter()
    .collect();
    let expected: BTreeSet<String> = [env.task_definition_arn.clone(), winner_td.clone()].into();
    assert_eq!(active, expected);
    for arn in inspect::task_definition_arns(
        &stack.clients,
        &env.task_definition_family,
        TaskDefinitionStatus::Inactive,
    )
    .await?
    {
        let app = inspect::container(&stack.clients, &arn, APP_CONTAINER).await?;
        assert_eq!(
            app.image(),
            Some(env.pinned_image(loser)?.as_str()),
            "an inactive revision is the loser's own: {arn}"
        );
    }
    Ok(())
}
