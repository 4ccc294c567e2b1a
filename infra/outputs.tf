output "state_machine_arn" {
  description = "ARN of the deploy state machine: StartExecution with the execution input (docs/execution-input.md)."
  value       = aws_sfn_state_machine.deploy.arn
}

output "state_machine_name" {
  description = "Name of the deploy state machine."
  value       = aws_sfn_state_machine.deploy.name
}

output "rotation_state_machine_arn" {
  description = "ARN of the rotation workflow's state machine, which rotate-secret starts after a token rotates (docs/rotation.md)."
  value       = aws_sfn_state_machine.rotate.arn
}

output "state_machine_role_arns" {
  description = "ARN of each state machine's role, by state machine (deploy, rotate)."
  value       = { for k, r in aws_iam_role.state_machine : k => r.arn }
}

output "state_machine_log_group_names" {
  description = "Log group of each state machine's execution logs, by state machine (deploy, rotate)."
  value       = { for k, g in aws_cloudwatch_log_group.state_machine : k => g.name }
}

output "function_arns" {
  description = "ARN of each Lambda function, by function name."
  value       = { for k, f in aws_lambda_function.function : k => f.arn }
}

output "function_names" {
  description = "Name of each Lambda function, by function name."
  value       = { for k, f in aws_lambda_function.function : k => f.function_name }
}

output "function_role_arns" {
  description = "ARN of each function's role, by function name: one role per function."
  value       = { for k, r in aws_iam_role.function : k => r.arn }
}

output "kms_key_arn" {
  description = "ARN of the customer-managed key of the secrets and log groups."
  value       = aws_kms_key.this.arn
}

output "dynatrace_secret_arns" {
  description = "ARN of each Dynatrace secret, by name: `valueFrom` in a container definition's `secrets` (append `:KEY::` for one key of a JSON secret)."
  value       = { for k, s in aws_secretsmanager_secret.dynatrace : k => s.arn }
}

output "deployer_token_secret_arn" {
  description = "ARN of the secret holding the functions' Dynatrace token (metrics.read, events.ingest); put its value after apply."
  value       = aws_secretsmanager_secret.deployer_token.arn
}

output "admin_token_secret_arn" {
  description = "ARN of the secret holding the Dynatrace token rotate-secret manages tokens with (apiTokens.read, apiTokens.write); put its value after apply."
  value       = aws_secretsmanager_secret.admin_token.arn
}

output "webhook_token_secret_arn" {
  description = "ARN of the secret holding the webhook's bearer token; Spinnaker's orca sends it (integrations/spinnaker/orca-local.yml)."
  value       = aws_secretsmanager_secret.webhook_token.arn
}

output "secrets_read_policy_json" {
  description = "The policy the module attaches to task_execution_role_names, for execution roles managed elsewhere."
  value       = data.aws_iam_policy_document.secrets_read.json
}

output "catalogue_layer_arn" {
  description = "ARN (with version) of the layer that ships the deployment catalogue to the trigger."
  value       = aws_lambda_layer_version.catalogue.arn
}

output "alarm_arns" {
  description = "ARNs of the failed, timed-out and aborted execution alarms, by `<state machine>-<kind>` (e.g. deploy-failed)."
  value       = { for k, a in aws_cloudwatch_metric_alarm.executions : k => a.arn }
}

output "ecr_push_rule_arn" {
  description = "ARN of the EventBridge rule for ECR pushes; null unless ecr_trigger_enabled and the catalogue follows a repository of this account and region."
  value       = try(aws_cloudwatch_event_rule.ecr_push[0].arn, null)
}

output "webhook_url" {
  description = "The webhook URL (the trigger's Function URL) a Spinnaker Webhook stage calls; null unless webhook_enabled."
  value       = try(aws_lambda_function_url.webhook[0].function_url, null)
}
