resource "aws_cloudwatch_log_group" "function" {
  for_each = local.functions

  name              = "/aws/lambda/${local.function_names[each.key]}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = var.tags
}

resource "aws_lambda_function" "function" {
  for_each = local.functions
  # The state machine invokes each step synchronously and owns retries; a dead-letter queue
  # only ever receives failed asynchronous invocations.
  #checkov:skip=CKV_AWS_116:invoked synchronously by Step Functions only, which handles every failure; a DLQ applies to asynchronous invokes
  # The functions call only AWS control-plane APIs (ECS, ELBv2, ECR); in a VPC they would
  # need NAT or interface endpoints for each of them and gain nothing.
  #checkov:skip=CKV_AWS_117:calls only public AWS APIs; a VPC would add NAT or endpoints and no protection
  # The one environment variable (validate's ALLOWED_IMAGE_REPOSITORIES) is a list of
  # repository names, not a secret; Lambda encrypts it at rest with its own key.
  #checkov:skip=CKV_AWS_173:the only environment variable is a non-secret repository list, encrypted at rest by Lambda

  function_name = local.function_names[each.key]
  description   = each.value.description
  role          = aws_iam_role.function[each.key].arn

  runtime       = "provided.al2023"
  architectures = ["arm64"]
  handler       = "bootstrap"
  # `make package` (cargo lambda build --release --arm64 --output-format zip) writes these.
  filename         = "${local.lambda_package_dir}/${each.key}/bootstrap.zip"
  source_code_hash = filebase64sha256("${local.lambda_package_dir}/${each.key}/bootstrap.zip")

  memory_size                    = var.lambda_memory_size
  timeout                        = var.lambda_timeout
  reserved_concurrent_executions = var.reserved_concurrent_executions
  code_signing_config_arn        = var.code_signing_config_arn

  tracing_config {
    mode = "Active"
  }

  # lambda_runtime's subscriber follows the function's log format and level.
  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.function[each.key].name
    application_log_level = var.lambda_log_level
    system_log_level      = "WARN"
  }

  dynamic "environment" {
    for_each = each.key == "validate" && length(var.allowed_image_repositories) > 0 ? [join(",", var.allowed_image_repositories)] : []
    content {
      variables = {
        ALLOWED_IMAGE_REPOSITORIES = environment.value
      }
    }
  }

  tags = var.tags

  # The role's policies must exist before the first invoke, not only the role.
  depends_on = [aws_iam_role_policy.function, aws_iam_role_policy.function_runtime]
}

# The webhook a Spinnaker Webhook stage calls (POST to start a deploy, GET for its status).
# It is served by the trigger function, which is not part of this release: it exists only
# with trigger_enabled and webhook_enabled.
resource "aws_lambda_function_url" "webhook" {
  count = var.trigger_enabled && var.webhook_enabled ? 1 : 0

  function_name      = var.trigger_function_arn
  authorization_type = var.webhook_authorization_type

  lifecycle {
    precondition {
      condition     = var.trigger_function_arn != null
      error_message = "webhook_enabled needs trigger_function_arn: the URL is served by the trigger function."
    }
  }
}
