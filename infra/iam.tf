# One role per function, each granting exactly the AWS actions its code calls (derived from
# the Rust sources and checked by `make infra-check`), on the resources it touches: the
# resources of var.services, the module's secrets, key and state machines.
#
# Resource = "*" appears only where the Service Authorization Reference lists no resource type
# for an action (it cannot be scoped by ARN); each such statement says so.

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    sid     = "LambdaAssumesTheRole"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "function" {
  for_each = local.functions

  name                 = local.function_names[each.key]
  description          = "Role of the ${local.function_names[each.key]} Lambda function"
  assume_role_policy   = data.aws_iam_policy_document.lambda_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

# What every function needs to run: its own log group and X-Ray (tracing is Active).
data "aws_iam_policy_document" "function_runtime" {
  for_each = local.functions

  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function[each.key].arn}:*"]
  }

  statement {
    sid = "SendTraces"
    # X-Ray has no resource types: trace segments cannot be scoped by ARN.
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "function_runtime" {
  for_each = local.functions

  name   = "runtime"
  role   = aws_iam_role.function[each.key].id
  policy = data.aws_iam_policy_document.function_runtime[each.key].json
}

resource "aws_iam_role_policy" "function" {
  for_each = local.functions

  name   = "calls"
  role   = aws_iam_role.function[each.key].id
  policy = local.function_policies[each.key]
}

locals {
  function_policies = {
    "validate"      = data.aws_iam_policy_document.validate.json
    "create-green"  = data.aws_iam_policy_document.create_green.json
    "verify-health" = data.aws_iam_policy_document.verify_health.json
    "shift-traffic" = data.aws_iam_policy_document.shift_traffic.json
    "drain-blue"    = data.aws_iam_policy_document.drain_blue.json
    "rotate-secret" = data.aws_iam_policy_document.rotate_secret.json
    "trigger"       = data.aws_iam_policy_document.trigger.json
  }
  # The tag operator commands are left in (crates/bluegreen/src/aws/ecs.rs, COMMAND_TAG).
  command_tag_key = "ecs-bluegreen:command"
}

# validate: reads the service, blue's task definition, the route's weights and the image tag.
data "aws_iam_policy_document" "validate" {
  statement {
    sid       = "ReadServices"
    actions   = ["ecs:DescribeServices"]
    resources = local.service_arns
  }

  statement {
    sid = "ReadTaskDefinitions"
    # ecs:DescribeTaskDefinition has no resource type: it cannot be scoped by ARN.
    actions   = ["ecs:DescribeTaskDefinition"]
    resources = ["*"]
  }

  statement {
    sid = "ReadRoutes"
    # ELBv2 Describe* actions have no resource types: they cannot be scoped by ARN.
    actions   = ["elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeRules"]
    resources = ["*"]
  }

  statement {
    sid       = "ResolveImageTags"
    actions   = ["ecr:DescribeImages"]
    resources = local.ecr_repository_arns
  }

  statement {
    sid = "CheckAlarmsExist"
    # A deployment names its alarms (or a prefix) in its input: any alarm of this account and
    # region, read only.
    actions   = ["cloudwatch:DescribeAlarms"]
    resources = [local.alarm_arns]
  }
}

# The functions' Dynatrace token, for the steps that query Dynatrace or post its events.
data "aws_iam_policy_document" "dynatrace_token" {
  statement {
    sid       = "ReadDynatraceToken"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.deployer_token.arn]
  }

  statement {
    sid       = "DecryptDynatraceToken"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.this.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${local.region}.amazonaws.com"]
    }
  }
}

# create-green: registers green's task definition revision (passing the service's task and
# execution roles to ECS, tagging it as blue's was) and creates the green task set; on a lost
# race it removes both again.
data "aws_iam_policy_document" "create_green" {
  source_policy_documents = [data.aws_iam_policy_document.dynatrace_token.json]

  statement {
    sid       = "ReadServices"
    actions   = ["ecs:DescribeServices"]
    resources = local.service_arns
  }

  statement {
    sid       = "ManageTaskSets"
    actions   = ["ecs:CreateTaskSet", "ecs:DescribeTaskSets", "ecs:DeleteTaskSet"]
    resources = local.task_set_arns
  }

  statement {
    sid       = "RegisterGreenRevisions"
    actions   = ["ecs:RegisterTaskDefinition"]
    resources = local.task_definition_arns
  }

  statement {
    sid       = "TagGreenRevisions"
    actions   = ["ecs:TagResource"]
    resources = local.task_definition_arns
    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RegisterTaskDefinition"]
    }
  }

  statement {
    sid = "ReadAndDeregisterTaskDefinitions"
    # ecs:DescribeTaskDefinition and ecs:DeregisterTaskDefinition have no resource type: they
    # cannot be scoped by ARN. create-green deregisters only the revision it registered.
    actions   = ["ecs:DescribeTaskDefinition", "ecs:DeregisterTaskDefinition"]
    resources = ["*"]
  }

  statement {
    sid       = "PassServiceRolesToEcsTasks"
    actions   = ["iam:PassRole"]
    resources = local.passed_role_arns
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }

  statement {
    sid = "ReadRoutes"
    # ELBv2 Describe* actions have no resource types: they cannot be scoped by ARN.
    actions   = ["elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeRules"]
    resources = ["*"]
  }

  statement {
    sid       = "ResolveImageTags"
    actions   = ["ecr:DescribeImages"]
    resources = local.ecr_repository_arns
  }
}

# verify-health: reads green's task set, its stopped tasks, its targets' health, the alarms and
# the operator command its deployment may have been left, and queries Dynatrace.
data "aws_iam_policy_document" "verify_health" {
  source_policy_documents = [data.aws_iam_policy_document.dynatrace_token.json]

  statement {
    sid       = "ReadServicesAndCommands"
    actions   = ["ecs:DescribeServices", "ecs:ListTagsForResource"]
    resources = local.service_arns
  }

  statement {
    sid = "ReadTaskDefinitions"
    # ecs:DescribeTaskDefinition has no resource type: it cannot be scoped by ARN.
    actions   = ["ecs:DescribeTaskDefinition"]
    resources = ["*"]
  }

  statement {
    sid = "ListStoppedTasks"
    # ecs:ListTasks is authorized against a container instance only when the request names
    # one; listing a cluster's tasks by startedBy is authorized against "*". The ecs:cluster
    # condition keeps it to the clusters of var.services.
    actions   = ["ecs:ListTasks"]
    resources = ["*"]
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = local.cluster_arns
    }
  }

  statement {
    sid       = "DescribeStoppedTasks"
    actions   = ["ecs:DescribeTasks"]
    resources = local.task_arns
  }

  statement {
    sid = "ReadTargetHealth"
    # elasticloadbalancing:DescribeTargetHealth has no resource type: it cannot be scoped by ARN.
    actions   = ["elasticloadbalancing:DescribeTargetHealth"]
    resources = ["*"]
  }

  statement {
    sid = "ReadAlarms"
    # A deployment names its alarms (or a prefix) in its input: any alarm of this account and
    # region, read only.
    actions   = ["cloudwatch:DescribeAlarms"]
    resources = [local.alarm_arns]
  }
}

# shift-traffic: reads the service and rewrites the weights of the listener's default action
# or of one of its rules.
data "aws_iam_policy_document" "shift_traffic" {
  statement {
    sid       = "ReadServices"
    actions   = ["ecs:DescribeServices"]
    resources = local.service_arns
  }

  statement {
    sid = "ReadRoutes"
    # ELBv2 Describe* actions have no resource types: they cannot be scoped by ARN.
    actions   = ["elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeRules"]
    resources = ["*"]
  }

  statement {
    sid       = "SetListenerWeights"
    actions   = ["elasticloadbalancing:ModifyListener"]
    resources = local.listener_arns
  }

  statement {
    sid       = "SetRuleWeights"
    actions   = ["elasticloadbalancing:ModifyRule"]
    resources = local.listener_rule_arns
  }
}

# drain-blue: makes a task set primary, removes the side that takes no traffic, on rollback
# deregisters green's revision, clears its deployment's operator command, and posts Dynatrace
# events.
data "aws_iam_policy_document" "drain_blue" {
  source_policy_documents = [data.aws_iam_policy_document.dynatrace_token.json]

  statement {
    sid       = "ReadServicesAndCommands"
    actions   = ["ecs:DescribeServices", "ecs:ListTagsForResource"]
    resources = local.service_arns
  }

  statement {
    sid       = "ClearOperatorCommands"
    actions   = ["ecs:UntagResource"]
    resources = local.service_arns
    condition {
      test     = "ForAllValues:StringEquals"
      variable = "aws:TagKeys"
      values   = [local.command_tag_key]
    }
  }

  statement {
    sid       = "SetPrimaryTaskSet"
    actions   = ["ecs:UpdateServicePrimaryTaskSet"]
    resources = local.service_arns
  }

  statement {
    sid       = "RemoveTaskSets"
    actions   = ["ecs:DescribeTaskSets", "ecs:DeleteTaskSet"]
    resources = local.task_set_arns
  }

  statement {
    sid = "ReadAndDeregisterTaskDefinitions"
    # ecs:DescribeTaskDefinition and ecs:DeregisterTaskDefinition have no resource type: they
    # cannot be scoped by ARN. drain-blue deregisters only green's revision, on rollback.
    actions   = ["ecs:DescribeTaskDefinition", "ecs:DeregisterTaskDefinition"]
    resources = ["*"]
  }

  statement {
    sid = "ReadRoutesAndDelays"
    # ELBv2 Describe* actions have no resource types: they cannot be scoped by ARN.
    actions = [
      "elasticloadbalancing:DescribeListeners",
      "elasticloadbalancing:DescribeRules",
      "elasticloadbalancing:DescribeTargetGroupAttributes",
    ]
    resources = ["*"]
  }
}

# rotate-secret: Secrets Manager's four rotation steps on the Dynatrace secrets (with the admin
# token to mint and revoke tokens), then the rotation workflow's actions: find the services
# that use the secret, start their redeploys and follow them.
data "aws_iam_policy_document" "rotate_secret" {
  statement {
    sid = "RotateTheDynatraceSecrets"
    actions = [
      "secretsmanager:DescribeSecret",
      "secretsmanager:GetSecretValue",
      "secretsmanager:PutSecretValue",
      "secretsmanager:UpdateSecretVersionStage",
    ]
    resources = [for s in aws_secretsmanager_secret.dynatrace : s.arn]
  }

  statement {
    sid       = "ReadAdminToken"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.admin_token.arn]
  }

  statement {
    sid       = "EncryptAndDecryptSecrets"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.this.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${local.region}.amazonaws.com"]
    }
  }

  statement {
    sid = "ListClusters"
    # ecs:ListClusters has no resource type: it cannot be scoped by ARN. rotate-secret lists
    # clusters only when no consumer cluster is configured, which the module always does.
    actions   = ["ecs:ListClusters"]
    resources = ["*"]
  }

  statement {
    sid = "ListConsumerServices"
    # ecs:ListServices has no resource type; the ecs:cluster condition keeps it to the
    # consumer clusters.
    actions   = ["ecs:ListServices"]
    resources = ["*"]
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = local.consumer_cluster_arns
    }
  }

  statement {
    sid       = "ReadConsumerServices"
    actions   = ["ecs:DescribeServices"]
    resources = local.consumer_service_arns
  }

  statement {
    sid = "ReadTaskDefinitions"
    # ecs:DescribeTaskDefinition has no resource type: it cannot be scoped by ARN.
    actions   = ["ecs:DescribeTaskDefinition"]
    resources = ["*"]
  }

  statement {
    sid = "FindConsumerRoutes"
    # ELBv2 Describe* actions have no resource types: they cannot be scoped by ARN.
    actions = [
      "elasticloadbalancing:DescribeListeners",
      "elasticloadbalancing:DescribeRules",
      "elasticloadbalancing:DescribeTargetGroups",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "StartRedeploysAndTheRotationWorkflow"
    actions   = ["states:StartExecution"]
    resources = [local.deploy_state_machine_arn, local.rotation_state_machine_arn]
  }

  statement {
    sid       = "FollowRedeploys"
    actions   = ["states:DescribeExecution"]
    resources = [local.deploy_execution_arns, local.rotation_execution_arns]
  }
}

# trigger: starts deploys, reports them, answers their approvals and leaves operator commands
# on their services; reads the webhook's token.
data "aws_iam_policy_document" "trigger" {
  statement {
    sid       = "StartDeploys"
    actions   = ["states:StartExecution"]
    resources = [local.deploy_state_machine_arn]
  }

  statement {
    sid       = "ReadDeploys"
    actions   = ["states:DescribeExecution", "states:GetExecutionHistory"]
    resources = [local.deploy_execution_arns]
  }

  statement {
    sid = "AnswerApprovals"
    # states:SendTaskSuccess has no resource type: the task token names the execution.
    actions   = ["states:SendTaskSuccess"]
    resources = ["*"]
  }

  statement {
    sid       = "ReadServices"
    actions   = ["ecs:DescribeServices"]
    resources = local.service_arns
  }

  statement {
    sid       = "LeaveOperatorCommands"
    actions   = ["ecs:TagResource"]
    resources = local.service_arns
    condition {
      test     = "ForAllValues:StringEquals"
      variable = "aws:TagKeys"
      values   = [local.command_tag_key]
    }
  }

  statement {
    sid       = "ReadWebhookToken"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.webhook_token.arn]
  }

  statement {
    sid       = "DecryptWebhookToken"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.this.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${local.region}.amazonaws.com"]
    }
  }
}

# ---- The state machine's role --------------------------------------------------------------

data "aws_iam_policy_document" "states_assume" {
  statement {
    sid     = "StepFunctionsAssumesTheRole"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["states.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

resource "aws_iam_role" "state_machine" {
  for_each = local.state_machines

  name                 = each.value.name
  description          = "Role of the ${each.value.name} state machine"
  assume_role_policy   = data.aws_iam_policy_document.states_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

locals {
  # The functions each state machine invokes.
  state_machine_functions = {
    "deploy" = local.deploy_steps
    "rotate" = ["rotate-secret"]
  }
}

data "aws_iam_policy_document" "state_machine" {
  for_each = local.state_machines

  statement {
    sid       = "InvokeItsFunctions"
    actions   = ["lambda:InvokeFunction"]
    resources = [for f in local.state_machine_functions[each.key] : aws_lambda_function.function[f].arn]
  }

  statement {
    sid = "DeliverExecutionLogs"
    # CloudWatch Logs' log delivery actions have no resource types: Step Functions' own
    # documentation grants them on "*".
    actions = [
      "logs:CreateLogDelivery",
      "logs:GetLogDelivery",
      "logs:UpdateLogDelivery",
      "logs:DeleteLogDelivery",
      "logs:ListLogDeliveries",
      "logs:PutResourcePolicy",
      "logs:DescribeResourcePolicies",
      "logs:DescribeLogGroups",
    ]
    resources = ["*"]
  }

  statement {
    sid = "SendTraces"
    # X-Ray has no resource types for these: they cannot be scoped by ARN.
    actions = [
      "xray:PutTraceSegments",
      "xray:PutTelemetryRecords",
      "xray:GetSamplingRules",
      "xray:GetSamplingTargets",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "state_machine" {
  for_each = local.state_machines

  name   = "invoke-and-log"
  role   = aws_iam_role.state_machine[each.key].id
  policy = data.aws_iam_policy_document.state_machine[each.key].json
}

# ---- The services' task execution roles: the Dynatrace secrets -----------------------------
#
# ECS resolves a container definition's `secrets` when it starts a task, before any container
# runs, with the task EXECUTION role (the one the ECS agent uses to pull the image and write
# logs). The task role is what the application's own code runs with; it never sees the
# `secrets` block and needs no access to the secrets.

data "aws_iam_policy_document" "secrets_read" {
  statement {
    sid       = "ReadDynatraceSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [for s in aws_secretsmanager_secret.dynatrace : s.arn]
  }

  statement {
    sid       = "DecryptDynatraceSecrets"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.this.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "task_execution_secrets" {
  for_each = toset(var.task_execution_role_names)

  name   = "${var.name}-dynatrace-secrets"
  role   = each.value
  policy = data.aws_iam_policy_document.secrets_read.json
}
