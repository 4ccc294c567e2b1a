output "state_machine_arn" {
  description = "ARN of the deploy state machine: StartExecution with the execution input (docs/execution-input.md)."
  value       = aws_sfn_state_machine.deploy.arn
}

output "state_machine_name" {
  description = "Name of the deploy state machine."
  value       = aws_sfn_state_machine.deploy.name
}

output "state_machine_role_arn" {
  description = "ARN of the state machine's role."
  value       = aws_iam_role.state_machine.arn
}

output "state_machine_log_group_name" {
  description = "Log group of the state machine's execution logs."
  value       = aws_cloudwatch_log_group.state_machine.name
}

output "function_arns" {
  description = "ARN of each step's Lambda function, by step name."
  value       = { for k, f in aws_lambda_function.function : k => f.arn }
}

output "function_names" {
  description = "Name of each step's Lambda function, by step name."
  value       = { for k, f in aws_lambda_function.function : k => f.function_name }
}

output "function_role_arns" {
  description = "ARN of each step's role, by step name: one role per function."
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

output "secrets_read_policy_json" {
  description = "The policy the module attaches to task_execution_role_names, for execution roles managed elsewhere."
  value       = data.aws_iam_policy_document.secrets_read.json
}

output "alarm_arns" {
  description = "ARNs of the failed, timed-out and aborted execution alarms."
  value       = { for k, a in aws_cloudwatch_metric_alarm.executions : k => a.arn }
}

output "ecr_push_rule_arn" {
  description = "ARN of the EventBridge rule for ECR pushes; null unless trigger_enabled."
  value       = try(aws_cloudwatch_event_rule.ecr_push[0].arn, null)
}

output "webhook_url" {
  description = "The webhook URL (the trigger function's Function URL) for Spinnaker; null unless trigger_enabled and webhook_enabled."
  value       = try(aws_lambda_function_url.webhook[0].function_url, null)
}
