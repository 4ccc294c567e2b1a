# The ECS side of a blue/green service, wired to the deploy workflow: a load balancer whose
# HTTPS listener forwards by weight to a pair of target groups, a Fargate service with the
# EXTERNAL deployment controller, its task definition with Dynatrace tokens from Secrets
# Manager, and the module. Terraform creates all of it once; after that the workflow owns the
# task sets, the task definition revisions and the listener's weights, and the lifecycle
# settings below keep Terraform from undoing its work.

provider "aws" {
  region = var.region

  default_tags {
    tags = var.tags
  }
}

data "aws_ecr_repository" "app" {
  name = var.ecr_repository_name
}

locals {
  container_name = "app"
  app_log_group  = "/ecs/${var.name}"
  # Plain names, so the module's inputs do not wait on the resources that use its outputs.
  family              = var.name
  execution_role_name = "${var.name}-task-execution"
}

# ---- Network ---------------------------------------------------------------------------------

resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "Load balancer of ${var.name}: HTTPS in, the tasks' port out"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  for_each = toset(var.ingress_cidr_blocks)

  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from ${each.value}"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "alb_to_tasks" {
  security_group_id            = aws_security_group.alb.id
  description                  = "To the tasks' container port"
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
}

resource "aws_security_group" "tasks" {
  # The task sets use this group; they are created by the workflow (and the first one by the
  # bootstrap below), not by Terraform, so no Terraform resource attaches it.
  #checkov:skip=CKV2_AWS_5:attached by the task sets, which the deploy workflow creates outside Terraform
  name        = "${var.name}-tasks"
  description = "Tasks of ${var.name}: the container port from the load balancer, HTTPS out"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "tasks_from_alb" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "The container port from the load balancer"
  referenced_security_group_id = aws_security_group.alb.id
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
}

resource "aws_vpc_security_group_egress_rule" "tasks_https" {
  security_group_id = aws_security_group.tasks.id
  description       = "HTTPS out: ECR, Secrets Manager, CloudWatch Logs, Dynatrace"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

# ---- Load balancer ---------------------------------------------------------------------------

resource "aws_lb" "app" {
  # A WAF web ACL is the user's own policy decision, outside a deploy example.
  #checkov:skip=CKV2_AWS_28:a WAF web ACL is the user's choice, associated outside this example
  name                       = var.name
  load_balancer_type         = "application"
  internal                   = var.alb_internal
  security_groups            = [aws_security_group.alb.id]
  subnets                    = var.alb_subnet_ids
  drop_invalid_header_fields = true
  enable_deletion_protection = var.alb_deletion_protection

  dynamic "access_logs" {
    for_each = var.alb_access_logs_bucket == null ? [] : [var.alb_access_logs_bucket]
    content {
      bucket  = access_logs.value
      prefix  = var.name
      enabled = true
    }
  }
}

# The pair blue and green alternate between. The names say which side runs first; after a
# deploy the live one is whichever the listener sends traffic to.
resource "aws_lb_target_group" "app" {
  for_each = toset(["blue", "green"])
  # TLS ends at the load balancer; the targets are the tasks' private IPs inside the VPC.

  name                 = "${var.name}-${each.key}"
  port                 = var.container_port
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 30

  health_check {
    path                = var.health_check_path
    matcher             = "200-399"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.app.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn

  # A weighted forward between the pair, all traffic on blue: what the workflow expects
  # before a deploy and moves during one.
  default_action {
    type = "forward"
    forward {
      target_group {
        arn    = aws_lb_target_group.app["blue"].arn
        weight = 100
      }
      target_group {
        arn    = aws_lb_target_group.app["green"].arn
        weight = 0
      }
    }
  }

  lifecycle {
    # The workflow moves the weights (and which group is live); Terraform must not put them
    # back on blue.
    ignore_changes = [default_action]
  }
}

# ---- ECS -------------------------------------------------------------------------------------

resource "aws_ecs_cluster" "app" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_cloudwatch_log_group" "app" {
  name              = local.app_log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = module.deployer.kms_key_arn
}

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    sid     = "EcsTasksAssumeTheRole"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

data "aws_caller_identity" "current" {}

# The task EXECUTION role: what ECS itself uses to start a task — pull the image, create the
# log stream, and fetch the container definition's `secrets` from Secrets Manager. The
# module attaches the secrets' read policy (GetSecretValue, kms:Decrypt) to this role.
resource "aws_iam_role" "execution" {
  name               = local.execution_role_name
  description        = "Task execution role of ${var.name}: image pull, logs, Dynatrace secrets"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid = "EcrAuthorization"
    # ecr:GetAuthorizationToken has no resource type: a registry login cannot be scoped by ARN.
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "PullTheImage"
    actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [data.aws_ecr_repository.app.arn]
  }

  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.app.arn}:*"]
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "start-tasks"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# The task role: what the application's code runs with. It needs nothing for the secrets —
# ECS resolves them before the container starts and hands them in as environment variables.
# Add the application's own permissions here.
resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  description        = "Task role of ${var.name}: the application's own permissions"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

# The first revision. The workflow registers every later one as a clone of the live revision
# with only the image changed; Terraform keeps this one (skip_destroy) because a task set may
# still run it.
resource "aws_ecs_task_definition" "app" {
  family                   = local.family
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_cpu
  memory                   = var.task_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  skip_destroy             = true

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  container_definitions = jsonencode([
    {
      name                   = local.container_name
      image                  = "${data.aws_ecr_repository.app.repository_url}:${var.initial_image_tag}"
      essential              = true
      readonlyRootFilesystem = true
      portMappings = [
        { containerPort = var.container_port, protocol = "tcp" }
      ]
      # Fetched by ECS with the execution role when the task starts; the container sees
      # plain environment variables.
      secrets = [
        {
          # A plain string secret: the whole value.
          name      = "DT_API_TOKEN"
          valueFrom = module.deployer.dynatrace_secret_arns["api-token"]
        },
        {
          # One key of a JSON secret: <secret ARN>:<json key>:<version stage>:<version id>,
          # empty stage and id meaning AWSCURRENT.
          name      = "DT_PAAS_TOKEN"
          valueFrom = "${module.deployer.dynatrace_secret_arns["tokens"]}:DT_PAAS_TOKEN::"
        },
      ]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          "awslogs-group"         = aws_cloudwatch_log_group.app.name
          "awslogs-region"        = var.region
          "awslogs-stream-prefix" = local.container_name
        }
      }
    }
  ])
}

resource "aws_ecs_service" "app" {
  name          = var.name
  cluster       = aws_ecs_cluster.app.id
  desired_count = var.desired_count
  # A service with task sets can only be deleted with them.
  force_delete = true

  # Deployments are task sets, created and removed by the workflow. With EXTERNAL the task
  # definition, load balancer, network configuration and launch type belong to each task set,
  # not to the service.
  deployment_controller {
    type = "EXTERNAL"
  }

  lifecycle {
    # What the workflow (or autoscaling) changes and ECS reports back on the service; Terraform
    # must not try to set it back.
    ignore_changes = [
      desired_count,
      task_definition,
      load_balancer,
      network_configuration,
      launch_type,
      platform_version,
      capacity_provider_strategy,
    ]
  }
}

# An EXTERNAL service starts with no task set; the workflow clones the primary one. This
# creates the first (blue) task set on the blue target group and makes it primary, once, when
# the service is created. It runs the AWS CLI with your shell's credentials, not Terraform's.
resource "terraform_data" "initial_task_set" {
  count = var.create_initial_task_set ? 1 : 0

  triggers_replace = [aws_ecs_service.app.id]

  provisioner "local-exec" {
    interpreter = ["/bin/bash", "-c"]
    command     = <<-EOT
      set -euo pipefail
      arn=$(aws ecs create-task-set --region "$REGION" --cluster "$CLUSTER" --service "$SERVICE" \
        --task-definition "$TASK_DEFINITION" --external-id initial --launch-type FARGATE \
        --network-configuration "awsvpcConfiguration={subnets=[$SUBNETS],securityGroups=[$SECURITY_GROUP],assignPublicIp=DISABLED}" \
        --load-balancers "targetGroupArn=$TARGET_GROUP,containerName=$CONTAINER,containerPort=$PORT" \
        --scale value=100,unit=PERCENT --query taskSet.taskSetArn --output text)
      aws ecs update-service-primary-task-set --region "$REGION" --cluster "$CLUSTER" \
        --service "$SERVICE" --primary-task-set "$arn" >/dev/null
    EOT
    environment = {
      REGION          = var.region
      CLUSTER         = aws_ecs_cluster.app.name
      SERVICE         = aws_ecs_service.app.name
      TASK_DEFINITION = aws_ecs_task_definition.app.arn
      SUBNETS         = join(",", var.task_subnet_ids)
      SECURITY_GROUP  = aws_security_group.tasks.id
      TARGET_GROUP    = aws_lb_target_group.app["blue"].arn
      CONTAINER       = local.container_name
      PORT            = var.container_port
    }
  }
}

# ---- The deploy workflow ---------------------------------------------------------------------

module "deployer" {
  source = "../.."

  name = var.deployer_name
  services = {
    (var.name) = {
      cluster_name           = aws_ecs_cluster.app.name
      service_name           = var.name
      listener_arn           = aws_lb_listener.https.arn
      task_definition_family = local.family
      execution_role_arn     = aws_iam_role.execution.arn
      task_role_arn          = aws_iam_role.task.arn
    }
  }
  ecr_repository_arns        = [data.aws_ecr_repository.app.arn]
  task_execution_role_names  = [aws_iam_role.execution.name]
  additional_log_group_names = [local.app_log_group]
  lambda_package_dir         = var.lambda_package_dir
  alarm_actions              = var.alarm_actions
  tags                       = var.tags

  # Dynatrace verification, deployment events and token rotation (null: none of them).
  dynatrace_api_url = var.dynatrace_api_url
  rotation_enabled  = var.dynatrace_api_url != null && var.rotation_enabled

  # Pushes of a tag matching release_tag_pattern deploy the service through the trigger;
  # the webhook lets a Spinnaker Webhook stage start, follow and abort deploys.
  webhook_enabled = var.webhook_enabled
  catalogue = {
    defaults = {
      strategy = { type = "canary", percent = 10, bakeSeconds = 300 }
    }
    deployments = {
      (var.name) = {
        repository      = data.aws_ecr_repository.app.repository_url
        tags            = [var.release_tag_pattern]
        cluster         = aws_ecs_cluster.app.name
        service         = var.name
        container       = local.container_name
        listenerArn     = aws_lb_listener.https.arn
        targetGroupArns = [aws_lb_target_group.app["blue"].arn, aws_lb_target_group.app["green"].arn]
      }
    }
  }
}
