resource "aws_cloudwatch_log_group" "function" {
  for_each = local.functions

  name              = "/aws/lambda/${local.function_names[each.key]}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = var.tags
}

resource "aws_lambda_function" "function" {
  for_each = local.functions
  # The state machines invoke the steps and rotate-secret synchronously and own retries;
  # Secrets Manager retries a failed rotation; EventBridge retries the trigger (its starts
  # are idempotent). A dead-letter queue only ever receives failed asynchronous invocations.
  #checkov:skip=CKV_AWS_116:invoked synchronously by Step Functions, Secrets Manager and the Function URL; EventBridge retries the idempotent trigger
  # The functions call only public AWS APIs and the Dynatrace API; in a VPC they would need
  # NAT or interface endpoints for each of them and gain nothing.
  #checkov:skip=CKV_AWS_117:calls only public AWS APIs and Dynatrace; a VPC would add NAT or endpoints and no protection
  # The environment holds ARNs, names, a URL and options, never a secret: the functions read
  # their tokens from Secrets Manager. Lambda encrypts it at rest with its own key.
  #checkov:skip=CKV_AWS_173:environment variables hold ARNs, names and options, no secret; Lambda encrypts them at rest

  function_name = local.function_names[each.key]
  description   = each.value.description
  role          = aws_iam_role.function[each.key].arn

  runtime       = "provided.al2023"
  architectures = ["arm64"]
  handler       = "bootstrap"
  # `make package` (cargo lambda build --release --arm64 --output-format zip) writes these.
  filename         = "${local.lambda_package_dir}/${each.key}/bootstrap.zip"
  source_code_hash = filebase64sha256("${local.lambda_package_dir}/${each.key}/bootstrap.zip")
  # The trigger reads the catalogue from its layer (/opt/catalogue.json).
  layers = each.key == "trigger" ? [aws_lambda_layer_version.catalogue.arn] : []

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
    for_each = length(local.function_environment[each.key]) > 0 ? [local.function_environment[each.key]] : []
    content {
      variables = environment.value
    }
  }

  tags = var.tags

  # The role's policies must exist before the first invoke, not only the role.
  depends_on = [aws_iam_role_policy.function, aws_iam_role_policy.function_runtime]
}

# ---- The deployment catalogue, in a layer the trigger reads --------------------------------

data "archive_file" "catalogue" {
  type        = "zip"
  output_path = "${path.root}/.terraform/tmp/${var.name}-catalogue.zip"

  source {
    content  = jsonencode(local.catalogue)
    filename = "catalogue.json"
  }
}

resource "aws_lambda_layer_version" "catalogue" {
  layer_name               = "${var.name}-catalogue"
  description              = "The deployment catalogue of ${var.name}'s trigger (docs/triggers.md)"
  filename                 = data.archive_file.catalogue.output_path
  source_code_hash         = data.archive_file.catalogue.output_base64sha256
  compatible_runtimes      = ["provided.al2023"]
  compatible_architectures = ["arm64"]

  lifecycle {
    # The deploy functions may touch only var.services: a catalogue deployment of another
    # service could start but never deploy.
    precondition {
      condition = alltrue([
        for d in values(try(local.catalogue.deployments, {})) : contains(
          [for s in values(var.services) : "${s.cluster_name}/${s.service_name}"],
          "${element(split("/", try(d.cluster, local.catalogue.defaults.cluster, "")), -1)}/${element(split("/", try(d.service, "")), -1)}"
        )
      ])
      error_message = "Every catalogue deployment must deploy one of var.services (the same cluster_name and service_name)."
    }
  }
}

# ---- The webhook Spinnaker calls -----------------------------------------------------------

# The trigger's Function URL. Spinnaker's Webhook stage cannot sign requests with SigV4, so
# the URL is public and the trigger authenticates every request itself: a bearer token from
# the webhook token secret, compared in constant time (docs/triggers.md).
resource "aws_lambda_function_url" "webhook" {
  count = var.webhook_enabled ? 1 : 0

  function_name      = aws_lambda_function.function["trigger"].function_name
  authorization_type = "NONE"
}

# A public Function URL needs both permissions, each only through the URL.
resource "aws_lambda_permission" "webhook_url" {
  count = var.webhook_enabled ? 1 : 0

  statement_id           = "WebhookFunctionUrl"
  action                 = "lambda:InvokeFunctionUrl"
  function_name          = aws_lambda_function.function["trigger"].function_name
  principal              = "*"
  function_url_auth_type = "NONE"
}

resource "aws_lambda_permission" "webhook_invoke" {
  count = var.webhook_enabled ? 1 : 0

  statement_id             = "WebhookInvokeViaFunctionUrl"
  action                   = "lambda:InvokeFunction"
  function_name            = aws_lambda_function.function["trigger"].function_name
  principal                = "*"
  invoked_via_function_url = true
}
