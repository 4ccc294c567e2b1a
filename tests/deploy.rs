//! End-to-end: the deploy state machine on the local stack (`make e2e`).
//!
//! For now only the starting point every deploy test relies on; the deploy scenarios
//! build on [`e2e::Stack`] and [`e2e::TestEnv`].

use e2e::Stack;
use local_stack::env::{APP_CONTAINER, EnvSpec, RuleSpec};
use local_stack::inspect;

#[tokio::test]
async fn a_fresh_environment_serves_blue_on_target_group_a_with_healthy_targets()
-> anyhow::Result<()> {
    // Given the local stack
    let stack = Stack::connect().await?;

    // When an environment is built
    let t = stack
        .environment("fresh_environment", EnvSpec::new(""))
        .await?;
    let env = &t.env;

    // Then blue is the one primary task set, on target group A, all its targets healthy
    let sets = inspect::task_sets(&stack.clients, &env.cluster_name, &env.service_name).await?;
    assert_eq!(sets.len(), 1, "{sets:?}");
    assert_eq!(sets[0].id, env.blue_task_set_id);
    assert_eq!(sets[0].status, "PRIMARY");
    assert_eq!(sets[0].target_group_arns, [env.tg_a().to_string()]);
    let a = inspect::target_counts(&stack.clients, env.tg_a()).await?;
    assert_eq!(
        (a.healthy, a.total()),
        (env.desired_count as usize, env.desired_count as usize),
        "{a}"
    );
    assert_eq!(
        inspect::target_counts(&stack.clients, env.tg_b())
            .await?
            .total(),
        0
    );

    // And all traffic goes to A
    let w = inspect::weights(&stack.clients, &env.route()).await?;
    assert_eq!(
        (
            inspect::weight_of(&w, env.tg_a()),
            inspect::weight_of(&w, env.tg_b())
        ),
        (100, 0)
    );

    // And blue runs v1 pinned by digest, with the secrets block referencing both secrets
    let app = inspect::container(&stack.clients, &env.task_definition_arn, APP_CONTAINER).await?;
    assert_eq!(app.image(), Some(env.pinned_image("v1")?.as_str()));
    let secrets: Vec<(String, String)> = app
        .secrets()
        .iter()
        .map(|s| (s.name().to_string(), s.value_from().to_string()))
        .collect();
    assert_eq!(secrets, env.secrets.container_secrets());

    // And every pushed tag has its own digest
    let digests: std::collections::BTreeSet<_> = env.images.values().collect();
    assert_eq!(digests.len(), env.images.len());

    // And the state machine was created from the workspace's ASL
    assert!(t.state_machine_arn.ends_with(&env.state_machine_name()));
    Ok(())
}

#[tokio::test]
async fn a_listener_rule_gets_its_own_weighted_forward_to_the_pair() -> anyhow::Result<()> {
    // Given the local stack
    let stack = Stack::connect().await?;

    // When an environment with a /api/* rule is built
    let mut spec = EnvSpec::new("");
    spec.listener_rule = Some(RuleSpec::PathPattern("/api/*".into()));
    let t = stack.environment("listener_rule", spec).await?;
    let env = &t.env;

    // Then deploys shift the rule, which forwards like the default action: all on A
    let route = env.route();
    assert_eq!(route.rule_arn, env.listener_rule_arn);
    assert!(route.rule_arn.is_some());
    for r in [route, env.default_route()] {
        let w = inspect::weights(&stack.clients, &r).await?;
        assert_eq!(
            (
                inspect::weight_of(&w, env.tg_a()),
                inspect::weight_of(&w, env.tg_b())
            ),
            (100, 0),
            "{r:?}"
        );
    }
    Ok(())
}
