# Every successful image push to a tracked repository starts a deploy through the trigger
# function, which builds the execution input and joins a repeated event to the execution it
# started. The trigger function is not part of this release: with trigger_enabled = false
# (the default) neither the rule nor its target exists, and deploys are started with
# StartExecution (see README.md).

resource "aws_cloudwatch_event_rule" "ecr_push" {
  count = var.trigger_enabled ? 1 : 0

  name        = "${var.name}-ecr-push"
  description = "Successful image pushes to the repositories ${var.name} deploys"
  # The pattern the trigger's tests check with EventBridge's TestEventPattern; the trigger
  # itself picks the catalogue deployments that follow the repository and tag.
  event_pattern = templatefile("${path.module}/patterns/ecr-push.json.tftpl", {
    repository_names = jsonencode(local.trigger_repository_names)
  })
  tags = var.tags
}

resource "aws_cloudwatch_event_target" "ecr_push" {
  count = var.trigger_enabled ? 1 : 0

  rule      = aws_cloudwatch_event_rule.ecr_push[0].name
  target_id = "trigger"
  arn       = var.trigger_function_arn

  lifecycle {
    precondition {
      condition     = var.trigger_function_arn != null
      error_message = "trigger_enabled needs trigger_function_arn, the function the rule invokes."
    }
  }
}

resource "aws_lambda_permission" "ecr_push" {
  count = var.trigger_enabled ? 1 : 0

  statement_id   = "${var.name}-ecr-push"
  action         = "lambda:InvokeFunction"
  function_name  = var.trigger_function_arn
  principal      = "events.amazonaws.com"
  source_arn     = aws_cloudwatch_event_rule.ecr_push[0].arn
  source_account = local.account
}
