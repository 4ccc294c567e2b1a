# One role per function, each granting exactly the AWS actions its code calls (derived from
# the Rust sources and checked by `make infra-check`), on the resources of var.services.
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

  name   = "deploy-step"
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
  }
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
}

# create-green: registers green's task definition revision (passing the service's task and
# execution roles to ECS, tagging it as blue's was) and creates the green task set; on a lost
# race it removes both again.
data "aws_iam_policy_document" "create_green" {
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

# verify-health: reads green's task set, its stopped tasks and its targets' health.
data "aws_iam_policy_document" "verify_health" {
  statement {
    sid       = "ReadServices"
    actions   = ["ecs:DescribeServices"]
    resources = local.service_arns
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

# drain-blue: makes a task set primary, removes the side that takes no traffic, and on
# rollback deregisters green's revision.
data "aws_iam_policy_document" "drain_blue" {
  statement {
    sid       = "ReadServices"
    actions   = ["ecs:DescribeServices"]
    resources = local.service_arns
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
  name                 = "${var.name}-deploy"
  description          = "Role of the ${var.name}-deploy state machine"
  assume_role_policy   = data.aws_iam_policy_document.states_assume.json
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags
}

data "aws_iam_policy_document" "state_machine" {
  statement {
    sid       = "InvokeDeploySteps"
    actions   = ["lambda:InvokeFunction"]
    resources = [for f in aws_lambda_function.function : f.arn]
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
  name   = "deploy"
  role   = aws_iam_role.state_machine.id
  policy = data.aws_iam_policy_document.state_machine.json
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
