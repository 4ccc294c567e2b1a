data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.region
  account   = data.aws_caller_identity.current.account_id

  # One name per function everywhere: the binary, target/lambda/<name>/, the Lambda function
  # and its role, and `<name>_function_arn` in the state machine definitions.
  functions = {
    "validate" = {
      description = "Blue/green deploy step: read-only checks of the request and the live service"
    }
    "create-green" = {
      description = "Blue/green deploy step: clone the live task definition with the new image, create the green task set"
    }
    "verify-health" = {
      description = "Blue/green deploy step: one poll of green (ECS, target health, alarms, Dynatrace)"
    }
    "shift-traffic" = {
      description = "Blue/green deploy step: set the weighted forward on the listener or rule, read it back"
    }
    "drain-blue" = {
      description = "Blue/green deploy step: promote green, remove a side that takes no traffic"
    }
    "rotate-secret" = {
      description = "Rotates the Dynatrace tokens, redeploys the services that use them, then revokes the previous ones"
    }
    "trigger" = {
      description = "Starts deploys from ECR pushes and the Spinnaker webhook, from the deployment catalogue"
    }
  }
  # The steps of the deploy state machine; rotate-secret is the rotation workflow's.
  deploy_steps   = ["validate", "create-green", "verify-health", "shift-traffic", "drain-blue"]
  function_names = { for k in keys(local.functions) : k => "${var.name}-${k}" }

  lambda_package_dir = coalesce(var.lambda_package_dir, "${path.module}/../target/lambda")
  asl_path           = "${path.module}/../statemachine/deploy.asl.json"
  rotation_asl_path  = "${path.module}/../statemachine/rotate.asl.json"

  # The state machines' ARNs from their names, so that the functions that start them do not
  # depend on them (the rotation workflow invokes rotate-secret, which starts it).
  deploy_state_machine_name   = "${var.name}-deploy"
  rotation_state_machine_name = "${var.name}-rotate"
  states_arn_prefix           = "arn:${local.partition}:states:${local.region}:${local.account}"
  deploy_state_machine_arn    = "${local.states_arn_prefix}:stateMachine:${local.deploy_state_machine_name}"
  rotation_state_machine_arn  = "${local.states_arn_prefix}:stateMachine:${local.rotation_state_machine_name}"
  deploy_execution_arns       = "${local.states_arn_prefix}:execution:${local.deploy_state_machine_name}:*"
  rotation_execution_arns     = "${local.states_arn_prefix}:execution:${local.rotation_state_machine_name}:*"

  # What the functions may touch, as ARNs (see iam.tf).
  ecs_arn_prefix       = "arn:${local.partition}:ecs:${local.region}:${local.account}"
  cluster_names        = distinct([for s in values(var.services) : s.cluster_name])
  cluster_arns         = [for c in local.cluster_names : "${local.ecs_arn_prefix}:cluster/${c}"]
  service_arns         = [for s in values(var.services) : "${local.ecs_arn_prefix}:service/${s.cluster_name}/${s.service_name}"]
  task_set_arns        = [for s in values(var.services) : "${local.ecs_arn_prefix}:task-set/${s.cluster_name}/${s.service_name}/*"]
  task_arns            = [for c in local.cluster_names : "${local.ecs_arn_prefix}:task/${c}/*"]
  task_definition_arns = distinct([for s in values(var.services) : "${local.ecs_arn_prefix}:task-definition/${s.task_definition_family}:*"])
  listener_arns        = distinct([for s in values(var.services) : s.listener_arn])
  # A rule's ARN is its listener's with `listener-rule` for `listener` and the rule id appended.
  listener_rule_arns  = [for l in local.listener_arns : "${replace(l, ":listener/app/", ":listener-rule/app/")}/*"]
  passed_role_arns    = distinct(compact(flatten([for s in values(var.services) : [s.task_role_arn, s.execution_role_arn]])))
  ecr_repository_arns = var.ecr_repository_arns
  alarm_arns          = "arn:${local.partition}:cloudwatch:${local.region}:${local.account}:alarm:*"
  # The clusters rotations search for services that use a secret, and their services.
  consumer_cluster_names = length(var.rotation_consumer_clusters) > 0 ? var.rotation_consumer_clusters : local.cluster_names
  consumer_cluster_arns  = [for c in local.consumer_cluster_names : "${local.ecs_arn_prefix}:cluster/${c}"]
  consumer_service_arns  = [for c in local.consumer_cluster_names : "${local.ecs_arn_prefix}:service/${c}/*"]

  # The deployment catalogue (docs/triggers.md), shipped to the trigger in a layer.
  catalogue = var.catalogue == null ? { deployments = {} } : var.catalogue
  catalogue_repositories = distinct(compact([
    for d in values(try(local.catalogue.deployments, {})) :
    try(regex("^${local.account}\\.dkr\\.ecr\\.${local.region}\\.amazonaws\\.com/(.+)$", d.repository)[0], "")
  ]))
  ecr_rule_enabled = var.ecr_trigger_enabled && length(local.catalogue_repositories) > 0

  # Dynatrace, for the functions that verify with it, post its events or rotate its tokens.
  dynatrace_enabled = var.dynatrace_api_url != null
  dynatrace_env = local.dynatrace_enabled ? {
    DYNATRACE_API_URL      = var.dynatrace_api_url
    DYNATRACE_TOKEN_SECRET = aws_secretsmanager_secret.deployer_token.arn
  } : {}
  rotation_enabled = var.rotation_enabled

  # Each function's environment (the variables its main.rs reads; docs/ name them all).
  function_environment = {
    "validate" = merge(
      length(var.allowed_image_repositories) > 0 ? { ALLOWED_IMAGE_REPOSITORIES = join(",", var.allowed_image_repositories) } : {},
      local.dynatrace_enabled ? { DYNATRACE_API_URL = var.dynatrace_api_url } : {},
    )
    "create-green"  = local.dynatrace_env
    "verify-health" = local.dynatrace_env
    "shift-traffic" = {}
    "drain-blue"    = local.dynatrace_env
    "rotate-secret" = merge(
      {
        DEPLOY_STATE_MACHINE_ARN   = local.deploy_state_machine_arn
        ROTATION_STATE_MACHINE_ARN = local.rotation_state_machine_arn
        CONSUMER_CLUSTERS          = join(",", local.consumer_cluster_names)
        TOKEN_LIFETIME_DAYS        = tostring(var.rotation_token_lifetime_days)
      },
      local.dynatrace_enabled ? {
        DYNATRACE_API_URL            = var.dynatrace_api_url
        DYNATRACE_ADMIN_TOKEN_SECRET = aws_secretsmanager_secret.admin_token.arn
      } : {},
      length(var.rotation_redeploy_options) > 0 ? { REDEPLOY_OPTIONS = jsonencode(var.rotation_redeploy_options) } : {},
    )
    "trigger" = merge(
      {
        DEPLOY_STATE_MACHINE_ARN = local.deploy_state_machine_arn
        CATALOGUE_PATH           = "/opt/catalogue.json"
      },
      { WEBHOOK_TOKEN_SECRET = aws_secretsmanager_secret.webhook_token.arn },
      var.webhook_public_url != null ? { WEBHOOK_PUBLIC_URL = var.webhook_public_url } : {},
    )
  }

  log_group_names = concat(
    [for k in keys(local.functions) : "/aws/lambda/${local.function_names[k]}"],
    ["/aws/vendedlogs/states/${local.deploy_state_machine_name}", "/aws/vendedlogs/states/${local.rotation_state_machine_name}"],
    var.additional_log_group_names,
  )
}
