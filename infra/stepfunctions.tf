resource "aws_cloudwatch_log_group" "state_machine" {
  for_each = local.state_machines
  # Step Functions delivers logs as vended logs; this prefix keeps its resource policy short.
  name              = "/aws/vendedlogs/states/${each.value.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = var.tags
}

locals {
  state_machines = {
    "deploy" = {
      name = local.deploy_state_machine_name
    }
    "rotate" = {
      name = local.rotation_state_machine_name
    }
  }
}

resource "aws_sfn_state_machine" "deploy" {
  name     = local.deploy_state_machine_name
  type     = "STANDARD"
  role_arn = aws_iam_role.state_machine["deploy"].arn

  # The workflow as it is in statemachine/: each `${<step>_function_arn}` placeholder is the
  # ARN of that step's function. `make infra-check` proves placeholders and variables match.
  definition = templatefile(local.asl_path, {
    validate_function_arn      = aws_lambda_function.function["validate"].arn
    create_green_function_arn  = aws_lambda_function.function["create-green"].arn
    verify_health_function_arn = aws_lambda_function.function["verify-health"].arn
    shift_traffic_function_arn = aws_lambda_function.function["shift-traffic"].arn
    drain_blue_function_arn    = aws_lambda_function.function["drain-blue"].arn
  })

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.state_machine["deploy"].arn}:*"
    include_execution_data = true
    level                  = var.state_machine_log_level
  }

  tracing_configuration {
    enabled = true
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.state_machine]
}

# The rotation workflow: redeploy the services that use a rotated secret, then revoke the
# previous tokens. rotate-secret's finishSecret starts it.
resource "aws_sfn_state_machine" "rotate" {
  name     = local.rotation_state_machine_name
  type     = "STANDARD"
  role_arn = aws_iam_role.state_machine["rotate"].arn

  definition = templatefile(local.rotation_asl_path, {
    rotate_secret_function_arn = aws_lambda_function.function["rotate-secret"].arn
  })

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.state_machine["rotate"].arn}:*"
    include_execution_data = true
    level                  = var.state_machine_log_level
  }

  tracing_configuration {
    enabled = true
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.state_machine]
}
