# Every successful image push to a repository the deployment catalogue follows starts a
# deploy through the trigger function, which picks the catalogue deployments that follow the
# repository and tag and joins a repeated event to the execution it started. Without
# catalogue deployments (or with ecr_trigger_enabled = false) neither the rule nor its
# target exists.

resource "aws_cloudwatch_event_rule" "ecr_push" {
  count = local.ecr_rule_enabled ? 1 : 0

  name        = "${var.name}-ecr-push"
  description = "Successful image pushes to the repositories the ${var.name} catalogue follows"
  # The pattern the trigger's tests check with EventBridge's TestEventPattern.
  event_pattern = templatefile("${path.module}/patterns/ecr-push.json.tftpl", {
    repository_names = jsonencode(local.catalogue_repositories)
  })
  tags = var.tags
}

resource "aws_cloudwatch_event_target" "ecr_push" {
  count = local.ecr_rule_enabled ? 1 : 0

  rule      = aws_cloudwatch_event_rule.ecr_push[0].name
  target_id = "trigger"
  arn       = aws_lambda_function.function["trigger"].arn
}

resource "aws_lambda_permission" "ecr_push" {
  count = local.ecr_rule_enabled ? 1 : 0

  statement_id   = "${var.name}-ecr-push"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.function["trigger"].function_name
  principal      = "events.amazonaws.com"
  source_arn     = aws_cloudwatch_event_rule.ecr_push[0].arn
  source_account = local.account
}
