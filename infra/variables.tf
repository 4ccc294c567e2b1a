variable "name" {
  description = "Prefix of every resource name: functions `<name>-<step>`, state machine `<name>-deploy`, key alias `alias/<name>`."
  type        = string
  default     = "ecs-bluegreen"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,39}$", var.name))
    error_message = "name must be lower-case letters, digits and hyphens, start with a letter, at most 40 characters (role names are <name>-<step>, 64 at most)."
  }
}

variable "tags" {
  description = "Tags for every resource the module creates."
  type        = map(string)
  default     = {}
}

variable "services" {
  description = "The ECS services the workflow may deploy, keyed by any short name. Each names its cluster and service (EXTERNAL deployment controller), the production listener whose default action or rules carry the weights, the task definition family green revisions are registered in, and the task and task execution roles its task definitions use (create-green passes them to ECS). The functions' roles are scoped to exactly these."
  type = map(object({
    cluster_name           = string
    service_name           = string
    listener_arn           = string
    task_definition_family = string
    execution_role_arn     = string
    task_role_arn          = optional(string)
  }))

  validation {
    condition     = length(var.services) > 0
    error_message = "services must name at least one service."
  }

  validation {
    condition = alltrue([
      for s in values(var.services) : can(regex("^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:[0-9]{12}:listener/app/[^/]+/[0-9a-f]+/[0-9a-f]+$", s.listener_arn))
    ])
    error_message = "listener_arn must be an Application Load Balancer listener ARN (arn:aws:elasticloadbalancing:REGION:ACCOUNT:listener/app/NAME/ID/ID)."
  }

  validation {
    condition = alltrue(flatten([
      for s in values(var.services) : [
        for r in compact([s.execution_role_arn, s.task_role_arn]) : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", r))
      ]
    ]))
    error_message = "execution_role_arn and task_role_arn must be IAM role ARNs (arn:aws:iam::ACCOUNT:role/NAME)."
  }
}

variable "ecr_repository_arns" {
  description = "ARNs of the ECR repositories deployed images come from: validate and create-green resolve tags to digests in them (ecr:DescribeImages)."
  type        = list(string)

  validation {
    condition     = length(var.ecr_repository_arns) > 0 && alltrue([for a in var.ecr_repository_arns : can(regex("^arn:aws[a-z-]*:ecr:[a-z0-9-]+:[0-9]{12}:repository/.+$", a))])
    error_message = "ecr_repository_arns must list ECR repository ARNs (arn:aws:ecr:REGION:ACCOUNT:repository/NAME)."
  }
}

variable "allowed_image_repositories" {
  description = "Image repositories (`registry/repository`, or `registry/prefix*`) a deploy may switch a container to, as validate's ALLOWED_IMAGE_REPOSITORIES. Empty: only the repository the container already runs from."
  type        = list(string)
  default     = []
}

variable "lambda_package_dir" {
  description = "Directory holding `<step>/bootstrap.zip` for each function, as `make package` builds them. Null: target/lambda of this repository."
  type        = string
  default     = null
}

variable "lambda_memory_size" {
  description = "Memory of each function, in MB."
  type        = number
  default     = 256
}

variable "lambda_timeout" {
  description = "Timeout of each function, in seconds. A step makes a few AWS calls of at most 10 s each and returns in well under a second normally."
  type        = number
  default     = 30
}

variable "lambda_log_level" {
  description = "Application log level of the functions (Lambda's advanced logging controls): TRACE, DEBUG, INFO, WARN, ERROR or FATAL."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"], var.lambda_log_level)
    error_message = "lambda_log_level must be TRACE, DEBUG, INFO, WARN, ERROR or FATAL."
  }
}

variable "reserved_concurrent_executions" {
  description = "Reserved concurrency of each function. Null: unreserved (reserving takes from the account's pool and fails where the account limit is low)."
  type        = number
  default     = null
}

variable "code_signing_config_arn" {
  description = "ARN of a Lambda code signing configuration the packages must be signed for. Null: none."
  type        = string
  default     = null
}

variable "permissions_boundary_arn" {
  description = "ARN of a permissions boundary for every role the module creates. Null: none."
  type        = string
  default     = null
}

variable "log_retention_days" {
  description = "Retention of the functions' and the state machine's log groups, in days."
  type        = number
  default     = 365
}

variable "state_machine_log_level" {
  description = "What the state machine logs, with execution data: ALL (every state transition), ERROR, FATAL or OFF. Its execution history is kept by Step Functions either way."
  type        = string
  default     = "ERROR"

  validation {
    condition     = contains(["ALL", "ERROR", "FATAL", "OFF"], var.state_machine_log_level)
    error_message = "state_machine_log_level must be ALL, ERROR, FATAL or OFF."
  }
}

variable "dynatrace_secrets" {
  description = "The Dynatrace token secrets the services' containers read, name (under secret_name_prefix) to description. Values are never set by Terraform: put them with the AWS CLI after apply."
  type        = map(string)
  default = {
    "api-token" = "Dynatrace API token, a plain string (dt0c01.*)."
    "tokens"    = "Dynatrace tokens as one JSON object, one key per token, e.g. {\"DT_PAAS_TOKEN\": \"dt0c01.*\"}."
  }
}

variable "secret_name_prefix" {
  description = "Prefix of the secrets' names: `<prefix>/<name>`."
  type        = string
  default     = "dynatrace"
}

variable "secret_recovery_window_days" {
  description = "Days a deleted secret can still be restored: 0 (delete at once) or 7 to 30."
  type        = number
  default     = 30

  validation {
    condition     = var.secret_recovery_window_days == 0 || (var.secret_recovery_window_days >= 7 && var.secret_recovery_window_days <= 30)
    error_message = "secret_recovery_window_days must be 0 or 7 to 30."
  }
}

variable "task_execution_role_names" {
  description = "Names of the services' task execution roles. Each gets secretsmanager:GetSecretValue on the secrets and kms:Decrypt on the key: ECS reads a task definition's `secrets` with the execution role, not the task role."
  type        = list(string)
  default     = []
}

variable "additional_log_group_names" {
  description = "Log groups outside the module that may be encrypted with its key (e.g. the services' awslogs groups)."
  type        = list(string)
  default     = []
}

variable "kms_deletion_window_days" {
  description = "Days before a deleted KMS key is gone: 7 to 30."
  type        = number
  default     = 30
}

variable "dynatrace_api_url" {
  description = "Your Dynatrace environment's API base URL (e.g. `https://abc12345.live.dynatrace.com`). Set, the functions verify with Dynatrace, post its deployment events and rotate its tokens, with the tokens in the deployer and admin token secrets; null: no Dynatrace."
  type        = string
  default     = null

  validation {
    condition     = var.dynatrace_api_url == null || can(regex("^https://[^/]+", var.dynatrace_api_url))
    error_message = "dynatrace_api_url must be an https:// URL."
  }
}

variable "rotation_enabled" {
  description = "Rotate the dynatrace_secrets with rotate-secret on rotation_schedule_expression: mint a new token, redeploy the services that use it, revoke the old one. Needs dynatrace_api_url and a token with apiTokens.read and apiTokens.write in the admin token secret."
  type        = bool
  default     = false
}

variable "rotation_schedule_expression" {
  description = "When the secrets rotate: `rate(N days)` or `cron(...)`."
  type        = string
  default     = "rate(30 days)"
}

variable "rotation_token_lifetime_days" {
  description = "Days a token minted by a rotation is valid (TOKEN_LIFETIME_DAYS); longer than the rotation interval."
  type        = number
  default     = 90

  validation {
    condition     = var.rotation_token_lifetime_days >= 1 && var.rotation_token_lifetime_days <= 3650
    error_message = "rotation_token_lifetime_days must be 1 to 3650."
  }
}

variable "rotation_consumer_clusters" {
  description = "ECS clusters (names) a rotation searches for services whose task definitions use the rotated secret. Empty: the clusters of services."
  type        = list(string)
  default     = []
}

variable "rotation_redeploy_options" {
  description = "Execution input fields every rotation redeploy gets (strategy, timing, verification…; docs/execution-input.md), as REDEPLOY_OPTIONS. Empty: the defaults."
  type        = any
  default     = {}
}

variable "catalogue" {
  description = "The deployment catalogue (docs/triggers.md) as an object: `{ defaults = {...}, deployments = { <name> = { repository, tags, cluster, service, container, listenerArn, targetGroupArns, ... } } }`; `jsondecode(file(\"catalogue.json\"))` for a file. It is shipped to the trigger in a Lambda layer. Null: no deployments."
  type        = any
  default     = null
}

variable "ecr_trigger_enabled" {
  description = "Start deploys from ECR pushes: an EventBridge rule for successful pushes to the catalogue's repositories (of this account and region), targeting the trigger."
  type        = bool
  default     = true
}

variable "webhook_enabled" {
  description = "Give the trigger a Function URL, the webhook a Spinnaker Webhook stage calls. Its bearer token is in the webhook token secret (put it after apply)."
  type        = bool
  default     = false
}

variable "webhook_public_url" {
  description = "The webhook's base URL when it is reached through another domain (WEBHOOK_PUBLIC_URL). Null: the Function URL."
  type        = string
  default     = null
}

variable "alarm_actions" {
  description = "ARNs (e.g. SNS topics) notified when a deploy or rotation execution fails, times out or is aborted."
  type        = list(string)
  default     = []
}
