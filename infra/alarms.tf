# A deploy that did not go live: failed (rejected, rolled back, or a rollback that failed),
# timed out, or aborted by someone. A rollback is a failed execution by design: green never
# went live and someone should know why.

locals {
  execution_alarms = {
    "failed"    = "ExecutionsFailed"
    "timed-out" = "ExecutionsTimedOut"
    "aborted"   = "ExecutionsAborted"
  }
}

resource "aws_cloudwatch_metric_alarm" "executions" {
  for_each = local.execution_alarms

  alarm_name        = "${var.name}-deploy-${each.key}"
  alarm_description = "A ${var.name} deploy execution ${replace(each.key, "-", " ")}: see its execution history for the reason."
  namespace         = "AWS/States"
  metric_name       = each.value
  dimensions = {
    StateMachineArn = aws_sfn_state_machine.deploy.arn
  }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  tags                = var.tags
}
