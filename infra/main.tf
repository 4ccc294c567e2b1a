data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.region
  account   = data.aws_caller_identity.current.account_id

  # One name per step everywhere: the binary, target/lambda/<name>/, the Lambda function and
  # its role, and `<name>_function_arn` in the state machine definition.
  functions = {
    "validate" = {
      description = "Blue/green deploy step: read-only checks of the request and the live service"
    }
    "create-green" = {
      description = "Blue/green deploy step: clone the live task definition with the new image, create the green task set"
    }
    "verify-health" = {
      description = "Blue/green deploy step: green is stable in ECS and every target is healthy"
    }
    "shift-traffic" = {
      description = "Blue/green deploy step: set the weighted forward on the listener or rule, read it back"
    }
    "drain-blue" = {
      description = "Blue/green deploy step: promote green, remove a side that takes no traffic"
    }
  }
  function_names     = { for k in keys(local.functions) : k => "${var.name}-${k}" }
  lambda_package_dir = coalesce(var.lambda_package_dir, "${path.module}/../target/lambda")
  asl_path           = "${path.module}/../statemachine/deploy.asl.json"

  # What the functions may touch, as ARNs (see iam.tf).
  ecs_arn_prefix       = "arn:${local.partition}:ecs:${local.region}:${local.account}"
  cluster_arns         = distinct([for s in values(var.services) : "${local.ecs_arn_prefix}:cluster/${s.cluster_name}"])
  service_arns         = [for s in values(var.services) : "${local.ecs_arn_prefix}:service/${s.cluster_name}/${s.service_name}"]
  task_set_arns        = [for s in values(var.services) : "${local.ecs_arn_prefix}:task-set/${s.cluster_name}/${s.service_name}/*"]
  task_arns            = distinct([for s in values(var.services) : "${local.ecs_arn_prefix}:task/${s.cluster_name}/*"])
  task_definition_arns = distinct([for s in values(var.services) : "${local.ecs_arn_prefix}:task-definition/${s.task_definition_family}:*"])
  listener_arns        = distinct([for s in values(var.services) : s.listener_arn])
  # A rule's ARN is its listener's with `listener-rule` for `listener` and the rule id appended.
  listener_rule_arns = [for l in local.listener_arns : "${replace(l, ":listener/app/", ":listener-rule/app/")}/*"]
  passed_role_arns   = distinct(compact(flatten([for s in values(var.services) : [s.task_role_arn, s.execution_role_arn]])))
  ecr_repository_arns = var.ecr_repository_arns

  trigger_repository_names = length(var.trigger_repository_names) > 0 ? var.trigger_repository_names : [
    for arn in var.ecr_repository_arns : regex("repository/(.+)$", arn)[0]
  ]

  log_group_names = concat(
    [for k in keys(local.functions) : "/aws/lambda/${local.function_names[k]}"],
    ["/aws/vendedlogs/states/${var.name}-deploy"],
    var.additional_log_group_names,
  )
}
