# An execution that did not end well, for both workflows: failed (rejected, rolled back, a
# rollback that failed, or a rotation whose redeploys failed), timed out, or aborted by
# someone. A rollback is a failed execution by design: green never went live and someone
# should know why.

locals {
  execution_alarm_kinds = {
    "failed"    = "ExecutionsFailed"
    "timed-out" = "ExecutionsTimedOut"
    "aborted"   = "ExecutionsAborted"
  }
  # "<state machine>-<kind>", e.g. "deploy-failed", "rotate-timed-out".
  execution_alarms = {
    for pair in setproduct(keys(local.state_machines), keys(local.execution_alarm_kinds)) :
    "${pair[0]}-${pair[1]}" => { state_machine = pair[0], metric_name = local.execution_alarm_kinds[pair[1]], kind = pair[1] }
  }
  state_machine_arns = {
    "deploy" = aws_sfn_state_machine.deploy.arn
    "rotate" = aws_sfn_state_machine.rotate.arn
  }
}

resource "aws_cloudwatch_metric_alarm" "executions" {
  for_each = local.execution_alarms

  alarm_name        = "${var.name}-${each.key}"
  alarm_description = "A ${var.name} ${each.value.state_machine} execution ${replace(each.value.kind, "-", " ")}: see its execution history for the reason."
  namespace         = "AWS/States"
  metric_name       = each.value.metric_name
  dimensions = {
    StateMachineArn = local.state_machine_arns[each.value.state_machine]
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
