//! The [`LoadBalancer`] port over `aws-sdk-elasticloadbalancingv2`.
//!
//! Weights live in the forward action of the route: the listener's `DefaultActions`
//! (read with DescribeListeners, written with ModifyListener and `DefaultActions` only) or a
//! rule's `Actions` (DescribeRules / ModifyRule with `Actions` only, never `Conditions`, so
//! the rule's conditions and transforms stay as they are). The rewrite of the action list is
//! the pure [`with_forward_weights`].

use aws_sdk_elasticloadbalancingv2::Client;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, AuthenticateOidcActionConfig, ForwardActionConfig, TargetGroupTuple,
};

use super::service_error_is;
use crate::error::{Error, Result};
use crate::ports::{LoadBalancer, TargetHealth, TrafficRoute, WeightedTargetGroup};

/// The attribute that holds a target group's deregistration delay.
pub const DEREGISTRATION_DELAY_KEY: &str = "deregistration_delay.timeout_seconds";
/// ELBv2's deregistration delay when the attribute is absent.
pub const DEFAULT_DEREGISTRATION_DELAY_SECONDS: u32 = 300;

/// Elastic Load Balancing v2 through the SDK.
#[derive(Debug, Clone)]
pub struct SdkElb {
    client: Client,
}

impl SdkElb {
    /// An adapter over `client`.
    pub fn new(client: Client) -> Self {
        SdkElb { client }
    }

    /// The SDK client, for calls the port does not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The route's actions: the listener's default actions or the rule's actions.
    async fn actions(&self, route: &TrafficRoute) -> Result<Vec<Action>> {
        match &route.rule_arn {
            Some(rule) => {
                let out = self
                    .client
                    .describe_rules()
                    .rule_arns(rule)
                    .send()
                    .await
                    .map_err(|e| {
                        if service_error_is(&e, |s| s.is_rule_not_found_exception()) {
                            rule_not_found(rule)
                        } else if service_error_is(&e, |s| s.is_listener_not_found_exception()) {
                            listener_not_found(&route.listener_arn)
                        } else {
                            Error::aws("DescribeRules", rule.as_str(), e)
                        }
                    })?;
                let found = out
                    .rules()
                    .iter()
                    .find(|r| r.rule_arn() == Some(rule.as_str()))
                    .ok_or_else(|| rule_not_found(rule))?;
                Ok(found.actions().to_vec())
            }
            None => {
                let listener = &route.listener_arn;
                let out = self
                    .client
                    .describe_listeners()
                    .listener_arns(listener)
                    .send()
                    .await
                    .map_err(|e| {
                        if service_error_is(&e, |s| s.is_listener_not_found_exception()) {
                            listener_not_found(listener)
                        } else {
                            Error::aws("DescribeListeners", listener.as_str(), e)
                        }
                    })?;
                let found = out
                    .listeners()
                    .iter()
                    .find(|l| l.listener_arn() == Some(listener.as_str()))
                    .ok_or_else(|| listener_not_found(listener))?;
                Ok(found.default_actions().to_vec())
            }
        }
    }
}

fn listener_not_found(listener: &str) -> Error {
    Error::InvalidInput(format!(
        "listener {listener} not found; check listenerArn and the region"
    ))
}

fn rule_not_found(rule: &str) -> Error {
    Error::InvalidInput(format!(
        "listener rule {rule} not found; check listenerRuleArn and the region"
    ))
}

fn target_group_not_found(target_group: &str) -> Error {
    Error::InvalidInput(format!(
        "target group {target_group} not found; check targetGroupArns and the region"
    ))
}

fn is_forward(action: &Action) -> bool {
    action.r#type() == Some(&ActionTypeEnum::Forward)
}

/// The index of the route's one forward action.
fn forward_index(route: &TrafficRoute, actions: &[Action]) -> Result<usize> {
    let mut forwards = actions
        .iter()
        .enumerate()
        .filter(|(_, a)| is_forward(a))
        .map(|(i, _)| i);
    match (forwards.next(), forwards.next()) {
        (Some(i), None) => Ok(i),
        (None, _) => {
            let types: Vec<&str> = actions
                .iter()
                .filter_map(|a| a.r#type())
                .map(ActionTypeEnum::as_str)
                .collect();
            Err(Error::PreconditionFailed(format!(
                "{route} has no forward action (its actions: {}); traffic can only be shifted by a weighted forward between the two target groups",
                if types.is_empty() {
                    "none".to_string()
                } else {
                    types.join(", ")
                }
            )))
        }
        (Some(_), Some(_)) => Err(Error::PreconditionFailed(format!(
            "{route} has more than one forward action; it must have exactly one"
        ))),
    }
}

/// The target groups and weights of a forward action. A plain `TargetGroupArn` forward is
/// one group with weight 1; a group without a weight has weight 1, as ELBv2 reads it.
fn weights_of(action: &Action) -> Vec<WeightedTargetGroup> {
    let tuples = action
        .forward_config()
        .map(ForwardActionConfig::target_groups)
        .unwrap_or_default();
    if tuples.is_empty() {
        return action
            .target_group_arn()
            .map(|tg| {
                vec![WeightedTargetGroup {
                    target_group_arn: tg.to_string(),
                    weight: 1,
                }]
            })
            .unwrap_or_default();
    }
    tuples
        .iter()
        .map(|t| WeightedTargetGroup {
            target_group_arn: t.target_group_arn().unwrap_or_default().to_string(),
            weight: t.weight().unwrap_or(1),
        })
        .collect()
}

/// The target groups and weights of the route's single forward action.
///
/// # Errors
/// [`Error::PreconditionFailed`] when the actions have no forward action, or several.
pub fn forward_weights_of(
    route: &TrafficRoute,
    actions: &[Action],
) -> Result<Vec<WeightedTargetGroup>> {
    let i = forward_index(route, actions)?;
    Ok(weights_of(&actions[i]))
}

/// `actions` with the forward's weights set to `weights`.
///
/// Keeps every other action (`authenticate-oidc`, `fixed-response`, …) as it is, the order
/// of the actions, and the forward's `TargetGroupStickinessConfig`. A plain
/// `TargetGroupArn` forward becomes a `ForwardConfig` (ELBv2 refuses a `TargetGroupArn` next
/// to several weighted groups). Groups of `weights` the forward does not have yet are added
/// after the existing ones. An `authenticate-oidc` action comes back from ELBv2 without its
/// client secret, so it is written with `UseExistingClientSecret`.
///
/// # Errors
/// [`Error::PreconditionFailed`] when there is no single forward action, or the forward
/// sends traffic to a target group that `weights` does not name (it would keep traffic this
/// deployment does not control).
pub fn with_forward_weights(
    route: &TrafficRoute,
    mut actions: Vec<Action>,
    weights: &[WeightedTargetGroup],
) -> Result<Vec<Action>> {
    let i = forward_index(route, &actions)?;
    let current = weights_of(&actions[i]);
    if let Some(foreign) = current.iter().find(|c| {
        !weights
            .iter()
            .any(|w| w.target_group_arn == c.target_group_arn)
    }) {
        return Err(Error::PreconditionFailed(format!(
            "the forward action of {route} also sends traffic to target group {} (weight {}), which is not one of {}; remove it from the forward first",
            foreign.target_group_arn,
            foreign.weight,
            weights
                .iter()
                .map(|w| w.target_group_arn.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut ordered: Vec<&WeightedTargetGroup> = Vec::with_capacity(weights.len());
    for c in &current {
        if let Some(w) = weights
            .iter()
            .find(|w| w.target_group_arn == c.target_group_arn)
        {
            ordered.push(w);
        }
    }
    for w in weights {
        if !ordered
            .iter()
            .any(|o| o.target_group_arn == w.target_group_arn)
        {
            ordered.push(w);
        }
    }
    let tuples: Vec<TargetGroupTuple> = ordered
        .iter()
        .map(|w| {
            TargetGroupTuple::builder()
                .target_group_arn(&w.target_group_arn)
                .weight(w.weight)
                .build()
        })
        .collect();
    let forward = &mut actions[i];
    let stickiness = forward
        .forward_config()
        .and_then(ForwardActionConfig::target_group_stickiness_config)
        .cloned();
    forward.forward_config = Some(
        ForwardActionConfig::builder()
            .set_target_groups(Some(tuples))
            .set_target_group_stickiness_config(stickiness)
            .build(),
    );
    forward.target_group_arn = None;
    for action in &mut actions {
        if let Some(oidc) = action.authenticate_oidc_config.as_mut() {
            keep_existing_client_secret(oidc);
        }
    }
    Ok(actions)
}

fn keep_existing_client_secret(oidc: &mut AuthenticateOidcActionConfig) {
    if oidc.client_secret.is_none() {
        oidc.use_existing_client_secret = Some(true);
    }
}

impl LoadBalancer for SdkElb {
    /// # Errors
    /// [`Error::InvalidInput`] when the listener or rule does not exist;
    /// [`Error::PreconditionFailed`] when it has no single forward action; otherwise
    /// [`Error::aws`] of `DescribeListeners` / `DescribeRules`.
    async fn forward_weights(&self, route: &TrafficRoute) -> Result<Vec<WeightedTargetGroup>> {
        let actions = self.actions(route).await?;
        forward_weights_of(route, &actions)
    }

    /// Skips the write when the route has these weights already.
    ///
    /// # Errors
    /// As [`with_forward_weights`] and [`SdkElb::forward_weights`];
    /// [`Error::InvalidInput`] when a target group does not exist; otherwise [`Error::aws`]
    /// of `ModifyListener` / `ModifyRule`.
    async fn set_forward_weights(
        &self,
        route: &TrafficRoute,
        weights: &[WeightedTargetGroup],
    ) -> Result<()> {
        let actions = self.actions(route).await?;
        let mut unchanged = actions.clone();
        for action in &mut unchanged {
            if let Some(oidc) = action.authenticate_oidc_config.as_mut() {
                keep_existing_client_secret(oidc);
            }
        }
        let rewritten = with_forward_weights(route, actions, weights)?;
        if rewritten == unchanged {
            return Ok(());
        }
        match &route.rule_arn {
            Some(rule) => {
                self.client
                    .modify_rule()
                    .rule_arn(rule)
                    .set_actions(Some(rewritten))
                    .send()
                    .await
                    .map_err(|e| {
                        if service_error_is(&e, |s| s.is_rule_not_found_exception()) {
                            rule_not_found(rule)
                        } else if service_error_is(&e, |s| s.is_target_group_not_found_exception())
                        {
                            target_group_not_found(&target_groups(weights))
                        } else {
                            Error::aws("ModifyRule", rule.as_str(), e)
                        }
                    })?;
            }
            None => {
                let listener = &route.listener_arn;
                self.client
                    .modify_listener()
                    .listener_arn(listener)
                    .set_default_actions(Some(rewritten))
                    .send()
                    .await
                    .map_err(|e| {
                        if service_error_is(&e, |s| s.is_listener_not_found_exception()) {
                            listener_not_found(listener)
                        } else if service_error_is(&e, |s| s.is_target_group_not_found_exception())
                        {
                            target_group_not_found(&target_groups(weights))
                        } else {
                            Error::aws("ModifyListener", listener.as_str(), e)
                        }
                    })?;
            }
        }
        Ok(())
    }

    /// # Errors
    /// [`Error::InvalidInput`] when the target group does not exist; otherwise
    /// [`Error::aws`] of `DescribeTargetHealth`.
    async fn target_health(&self, target_group_arn: &str) -> Result<Vec<TargetHealth>> {
        let out = self
            .client
            .describe_target_health()
            .target_group_arn(target_group_arn)
            .send()
            .await
            .map_err(|e| {
                if service_error_is(&e, |s| s.is_target_group_not_found_exception()) {
                    target_group_not_found(target_group_arn)
                } else {
                    Error::aws("DescribeTargetHealth", target_group_arn, e)
                }
            })?;
        Ok(out
            .target_health_descriptions()
            .iter()
            .map(|d| TargetHealth {
                id: d
                    .target()
                    .and_then(|t| t.id())
                    .unwrap_or_default()
                    .to_string(),
                port: d.target().and_then(|t| t.port()),
                state: d
                    .target_health()
                    .and_then(|h| h.state())
                    .map_or("unknown", |s| s.as_str())
                    .to_string(),
                reason: d
                    .target_health()
                    .and_then(|h| h.reason())
                    .map(|r| r.as_str().to_string()),
            })
            .collect())
    }

    /// # Errors
    /// [`Error::InvalidInput`] when the target group does not exist; [`Error::Aws`] when the
    /// attribute is not a number; otherwise [`Error::aws`] of
    /// `DescribeTargetGroupAttributes`.
    async fn deregistration_delay(&self, target_group_arn: &str) -> Result<u32> {
        let out = self
            .client
            .describe_target_group_attributes()
            .target_group_arn(target_group_arn)
            .send()
            .await
            .map_err(|e| {
                if service_error_is(&e, |s| s.is_target_group_not_found_exception()) {
                    target_group_not_found(target_group_arn)
                } else {
                    Error::aws("DescribeTargetGroupAttributes", target_group_arn, e)
                }
            })?;
        let Some(value) = out
            .attributes()
            .iter()
            .find(|a| a.key() == Some(DEREGISTRATION_DELAY_KEY))
            .and_then(|a| a.value())
        else {
            return Ok(DEFAULT_DEREGISTRATION_DELAY_SECONDS);
        };
        value.trim().parse().map_err(|_| Error::Aws {
            operation: "DescribeTargetGroupAttributes",
            resource: target_group_arn.to_string(),
            code: "InvalidAttributeValue".into(),
            message: format!("{DEREGISTRATION_DELAY_KEY} is {value:?}, not a number of seconds"),
        })
    }

    /// `DescribeTargetGroups` (the group's load balancers), then `DescribeListeners` and
    /// `DescribeRules` of each; every default action or rule whose forward names the group.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the target group does not exist; otherwise [`Error::aws`]
    /// of those calls.
    async fn routes_to(
        &self,
        target_group_arn: &str,
    ) -> Result<Vec<(TrafficRoute, Vec<WeightedTargetGroup>)>> {
        let groups = self
            .client
            .describe_target_groups()
            .target_group_arns(target_group_arn)
            .send()
            .await
            .map_err(|e| {
                if service_error_is(&e, |s| s.is_target_group_not_found_exception()) {
                    target_group_not_found(target_group_arn)
                } else {
                    Error::aws("DescribeTargetGroups", target_group_arn, e)
                }
            })?;
        let load_balancers: Vec<String> = groups
            .target_groups()
            .iter()
            .flat_map(|g| g.load_balancer_arns().iter().cloned())
            .collect();
        let mut found = Vec::new();
        let names = |weights: &[WeightedTargetGroup]| {
            weights
                .iter()
                .any(|w| w.target_group_arn == target_group_arn)
        };
        for lb in &load_balancers {
            let listeners = self
                .client
                .describe_listeners()
                .load_balancer_arn(lb)
                .send()
                .await
                .map_err(|e| Error::aws("DescribeListeners", lb.as_str(), e))?;
            for listener in listeners.listeners() {
                let Some(listener_arn) = listener.listener_arn() else {
                    continue;
                };
                let default_route = TrafficRoute {
                    listener_arn: listener_arn.to_string(),
                    rule_arn: None,
                };
                if let Ok(weights) = forward_weights_of(&default_route, listener.default_actions())
                    && names(&weights)
                {
                    found.push((default_route, weights));
                }
                let rules = self
                    .client
                    .describe_rules()
                    .listener_arn(listener_arn)
                    .send()
                    .await
                    .map_err(|e| Error::aws("DescribeRules", listener_arn, e))?;
                for rule in rules.rules() {
                    if rule.is_default() == Some(true) {
                        continue;
                    }
                    let route = TrafficRoute {
                        listener_arn: listener_arn.to_string(),
                        rule_arn: rule.rule_arn().map(str::to_string),
                    };
                    if let Ok(weights) = forward_weights_of(&route, rule.actions())
                        && names(&weights)
                    {
                        found.push((route, weights));
                    }
                }
            }
        }
        Ok(found)
    }
}

fn target_groups(weights: &[WeightedTargetGroup]) -> String {
    weights
        .iter()
        .map(|w| w.target_group_arn.as_str())
        .collect::<Vec<_>>()
        .join(" or ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use aws_sdk_elasticloadbalancingv2::operation::describe_listeners::{
        DescribeListenersError, DescribeListenersOutput,
    };
    use aws_sdk_elasticloadbalancingv2::operation::describe_rules::DescribeRulesOutput;
    use aws_sdk_elasticloadbalancingv2::operation::describe_target_group_attributes::DescribeTargetGroupAttributesOutput;
    use aws_sdk_elasticloadbalancingv2::operation::describe_target_health::DescribeTargetHealthOutput;
    use aws_sdk_elasticloadbalancingv2::operation::modify_listener::ModifyListenerOutput;
    use aws_sdk_elasticloadbalancingv2::operation::modify_rule::ModifyRuleOutput;
    use aws_sdk_elasticloadbalancingv2::types::error::ListenerNotFoundException;
    use aws_sdk_elasticloadbalancingv2::types::{
        self as elb, FixedResponseActionConfig, TargetGroupStickinessConfig,
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    const LISTENER: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/demo/50dc6c495c0c9188/f2f7dc8efc522ab2";
    const RULE: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/demo/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee";
    const TG_A: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/orders-a/73e2d6bc24d8a067";
    const TG_B: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/orders-b/6d0ecf831eec9f09";
    const TG_C: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/other/0000000000000000";

    fn route() -> TrafficRoute {
        TrafficRoute {
            listener_arn: LISTENER.into(),
            rule_arn: None,
        }
    }

    fn rule_route() -> TrafficRoute {
        TrafficRoute {
            listener_arn: LISTENER.into(),
            rule_arn: Some(RULE.into()),
        }
    }

    fn w(tg: &str, weight: i32) -> WeightedTargetGroup {
        WeightedTargetGroup {
            target_group_arn: tg.into(),
            weight,
        }
    }

    fn tuple(tg: &str, weight: i32) -> TargetGroupTuple {
        TargetGroupTuple::builder()
            .target_group_arn(tg)
            .weight(weight)
            .build()
    }

    fn weighted_forward(groups: &[(&str, i32)], stickiness: Option<i32>, order: i32) -> Action {
        let sticky = stickiness.map_or_else(
            || {
                TargetGroupStickinessConfig::builder()
                    .enabled(false)
                    .build()
            },
            |s| {
                TargetGroupStickinessConfig::builder()
                    .enabled(true)
                    .duration_seconds(s)
                    .build()
            },
        );
        Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .order(order)
            .forward_config(
                ForwardActionConfig::builder()
                    .set_target_groups(Some(groups.iter().map(|(tg, wt)| tuple(tg, *wt)).collect()))
                    .target_group_stickiness_config(sticky)
                    .build(),
            )
            .build()
    }

    fn oidc(order: i32) -> Action {
        Action::builder()
            .r#type(ActionTypeEnum::AuthenticateOidc)
            .order(order)
            .authenticate_oidc_config(
                AuthenticateOidcActionConfig::builder()
                    .issuer("https://idp.example.com")
                    .authorization_endpoint("https://idp.example.com/authorize")
                    .token_endpoint("https://idp.example.com/token")
                    .user_info_endpoint("https://idp.example.com/userinfo")
                    .client_id("orders")
                    .build(),
            )
            .build()
    }

    #[test]
    fn a_plain_target_group_forward_reads_as_weight_one_and_is_rewritten_as_a_weighted_forward() {
        let plain = vec![
            Action::builder()
                .r#type(ActionTypeEnum::Forward)
                .target_group_arn(TG_A)
                .build(),
        ];
        assert_eq!(forward_weights_of(&route(), &plain).unwrap(), [w(TG_A, 1)]);

        let out = with_forward_weights(&route(), plain, &[w(TG_A, 90), w(TG_B, 10)]).unwrap();

        assert_eq!(out.len(), 1);
        assert_eq!(out[0].target_group_arn(), None);
        assert_eq!(
            out[0].forward_config().unwrap().target_groups(),
            [tuple(TG_A, 90), tuple(TG_B, 10)]
        );
        assert_eq!(
            forward_weights_of(&route(), &out).unwrap(),
            [w(TG_A, 90), w(TG_B, 10)]
        );
    }

    #[test]
    fn the_rewrite_keeps_other_actions_their_order_and_the_stickiness() {
        let fixed = Action::builder()
            .r#type(ActionTypeEnum::FixedResponse)
            .fixed_response_config(
                FixedResponseActionConfig::builder()
                    .status_code("503")
                    .build(),
            )
            .build();
        let actions = vec![
            oidc(1),
            weighted_forward(&[(TG_A, 100), (TG_B, 0)], Some(300), 2),
        ];

        let out =
            with_forward_weights(&route(), actions.clone(), &[w(TG_B, 25), w(TG_A, 75)]).unwrap();

        assert_eq!(out.len(), 2);
        assert_eq!(out[0].r#type(), Some(&ActionTypeEnum::AuthenticateOidc));
        assert_eq!(out[0].order(), Some(1));
        let issuer = out[0].authenticate_oidc_config().unwrap().issuer();
        assert_eq!(
            issuer,
            actions[0].authenticate_oidc_config().unwrap().issuer()
        );
        assert_eq!(out[1].order(), Some(2));
        let forward = out[1].forward_config().unwrap();
        assert_eq!(
            forward.target_groups(),
            [tuple(TG_A, 75), tuple(TG_B, 25)],
            "existing order kept"
        );
        let sticky = forward.target_group_stickiness_config().unwrap();
        assert_eq!(
            (sticky.enabled(), sticky.duration_seconds()),
            (Some(true), Some(300))
        );

        let with_fixed = with_forward_weights(
            &route(),
            vec![fixed.clone(), weighted_forward(&[(TG_A, 1)], None, 2)],
            &[w(TG_A, 0), w(TG_B, 100)],
        )
        .unwrap();
        assert_eq!(with_fixed[0], fixed);
    }

    #[test]
    fn an_oidc_action_is_written_back_with_its_existing_client_secret() {
        let out = with_forward_weights(
            &route(),
            vec![
                oidc(1),
                weighted_forward(&[(TG_A, 100), (TG_B, 0)], None, 2),
            ],
            &[w(TG_A, 50), w(TG_B, 50)],
        )
        .unwrap();

        assert_eq!(
            out[0]
                .authenticate_oidc_config()
                .unwrap()
                .use_existing_client_secret(),
            Some(true)
        );
    }

    #[test]
    fn a_route_without_a_forward_action_is_a_failed_precondition() {
        let fixed = vec![
            Action::builder()
                .r#type(ActionTypeEnum::FixedResponse)
                .fixed_response_config(
                    FixedResponseActionConfig::builder()
                        .status_code("404")
                        .build(),
                )
                .build(),
        ];

        let err =
            with_forward_weights(&route(), fixed.clone(), &[w(TG_A, 100), w(TG_B, 0)]).unwrap_err();
        assert_eq!(err.error_type(), "PreconditionFailed");
        assert!(
            err.to_string().contains("no forward action")
                && err.to_string().contains("fixed-response"),
            "{err}"
        );
        assert_eq!(
            forward_weights_of(&route(), &fixed)
                .unwrap_err()
                .error_type(),
            "PreconditionFailed"
        );
    }

    #[test]
    fn a_forward_to_a_third_target_group_is_a_failed_precondition() {
        let actions = vec![weighted_forward(&[(TG_A, 90), (TG_C, 10)], None, 1)];

        let err = with_forward_weights(&route(), actions, &[w(TG_A, 100), w(TG_B, 0)]).unwrap_err();

        assert_eq!(err.error_type(), "PreconditionFailed");
        assert!(err.to_string().contains(TG_C), "{err}");
    }

    fn listener_with(actions: Vec<Action>) -> DescribeListenersOutput {
        DescribeListenersOutput::builder()
            .listeners(
                elb::Listener::builder()
                    .listener_arn(LISTENER)
                    .port(443)
                    .protocol(elb::ProtocolEnum::Https)
                    .set_default_actions(Some(actions))
                    .build(),
            )
            .build()
    }

    #[tokio::test]
    async fn a_listener_is_modified_with_its_default_actions_only() {
        let describe = mock!(Client::describe_listeners).then_output(|| {
            listener_with(vec![weighted_forward(&[(TG_A, 100), (TG_B, 0)], None, 1)])
        });
        let modify = mock!(Client::modify_listener)
            .match_requests(|i| {
                i.listener_arn() == Some(LISTENER)
                    && i.port().is_none()
                    && i.protocol().is_none()
                    && i.certificates().is_empty()
                    && i.ssl_policy().is_none()
                    && forward_weights_of(&route(), i.default_actions()).unwrap()
                        == [w(TG_A, 10), w(TG_B, 90)]
            })
            .then_output(|| ModifyListenerOutput::builder().build());
        let elb = SdkElb::new(mock_client!(
            aws_sdk_elasticloadbalancingv2,
            [&describe, &modify]
        ));

        elb.set_forward_weights(&route(), &[w(TG_A, 10), w(TG_B, 90)])
            .await
            .unwrap();

        assert_eq!(modify.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_rule_is_modified_with_its_actions_only_so_its_conditions_stay() {
        let describe = mock!(Client::describe_rules).then_output(|| {
            DescribeRulesOutput::builder()
                .rules(
                    elb::Rule::builder()
                        .rule_arn(RULE)
                        .conditions(
                            elb::RuleCondition::builder()
                                .field("path-pattern")
                                .values("/orders/*")
                                .build(),
                        )
                        .actions(oidc(1))
                        .actions(weighted_forward(&[(TG_A, 100), (TG_B, 0)], Some(300), 2))
                        .build(),
                )
                .build()
        });
        let modify = mock!(Client::modify_rule)
            .match_requests(|i| {
                i.rule_arn() == Some(RULE) && i.conditions().is_empty() && i.actions().len() == 2
            })
            .then_output(|| ModifyRuleOutput::builder().build());
        let elb = SdkElb::new(mock_client!(
            aws_sdk_elasticloadbalancingv2,
            [&describe, &modify]
        ));

        elb.set_forward_weights(&rule_route(), &[w(TG_A, 0), w(TG_B, 100)])
            .await
            .unwrap();

        assert_eq!(modify.num_calls(), 1);
    }

    #[tokio::test]
    async fn weights_that_are_set_already_are_not_written_again() {
        let describe = mock!(Client::describe_listeners).then_output(|| {
            listener_with(vec![
                oidc(1),
                weighted_forward(&[(TG_A, 100), (TG_B, 0)], None, 2),
            ])
        });
        let modify =
            mock!(Client::modify_listener).then_output(|| ModifyListenerOutput::builder().build());
        let elb = SdkElb::new(mock_client!(
            aws_sdk_elasticloadbalancingv2,
            RuleMode::MatchAny,
            [&describe, &modify]
        ));

        elb.set_forward_weights(&route(), &[w(TG_A, 100), w(TG_B, 0)])
            .await
            .unwrap();

        assert_eq!(modify.num_calls(), 0);
    }

    #[tokio::test]
    async fn a_missing_listener_is_invalid_input() {
        let describe = mock!(Client::describe_listeners).then_error(|| {
            DescribeListenersError::ListenerNotFoundException(
                ListenerNotFoundException::builder().message("nope").build(),
            )
        });
        let elb = SdkElb::new(mock_client!(aws_sdk_elasticloadbalancingv2, [&describe]));

        let err = elb.forward_weights(&route()).await.unwrap_err();

        assert_eq!(err.error_type(), "InvalidInput");
        assert!(err.to_string().contains(LISTENER), "{err}");
    }

    #[tokio::test]
    async fn the_deregistration_delay_is_read_and_defaults_to_300_seconds() {
        let set = mock!(Client::describe_target_group_attributes).then_output(|| {
            DescribeTargetGroupAttributesOutput::builder()
                .attributes(
                    elb::TargetGroupAttribute::builder()
                        .key("stickiness.enabled")
                        .value("false")
                        .build(),
                )
                .attributes(
                    elb::TargetGroupAttribute::builder()
                        .key(DEREGISTRATION_DELAY_KEY)
                        .value("45")
                        .build(),
                )
                .build()
        });
        let absent = mock!(Client::describe_target_group_attributes)
            .then_output(|| DescribeTargetGroupAttributesOutput::builder().build());
        let elb = SdkElb::new(mock_client!(
            aws_sdk_elasticloadbalancingv2,
            [&set, &absent]
        ));

        assert_eq!(elb.deregistration_delay(TG_A).await.unwrap(), 45);
        assert_eq!(
            elb.deregistration_delay(TG_A).await.unwrap(),
            DEFAULT_DEREGISTRATION_DELAY_SECONDS
        );
    }

    #[tokio::test]
    async fn target_health_maps_state_and_reason() {
        let health = mock!(Client::describe_target_health).then_output(|| {
            DescribeTargetHealthOutput::builder()
                .target_health_descriptions(
                    elb::TargetHealthDescription::builder()
                        .target(
                            elb::TargetDescription::builder()
                                .id("10.0.1.10")
                                .port(8080)
                                .build(),
                        )
                        .target_health(
                            elb::TargetHealth::builder()
                                .state(elb::TargetHealthStateEnum::Unhealthy)
                                .reason(elb::TargetHealthReasonEnum::FailedHealthChecks)
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
        let elb = SdkElb::new(mock_client!(aws_sdk_elasticloadbalancingv2, [&health]));

        let targets = elb.target_health(TG_B).await.unwrap();

        assert_eq!(
            targets,
            [TargetHealth {
                id: "10.0.1.10".into(),
                port: Some(8080),
                state: "unhealthy".into(),
                reason: Some("Target.FailedHealthChecks".into()),
            }]
        );
    }
}
