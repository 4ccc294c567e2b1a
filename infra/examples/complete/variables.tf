variable "region" {
  description = "AWS region of everything the example creates."
  type        = string
}

variable "name" {
  description = "Name of the service, its cluster, load balancer, target groups (`<name>-blue`, `<name>-green`) and task definition family."
  type        = string
  default     = "orders"
}

variable "deployer_name" {
  description = "Prefix of the deploy workflow's resources (the module's `name`)."
  type        = string
  default     = "ecs-bluegreen"
}

variable "vpc_id" {
  description = "VPC of the load balancer and the tasks."
  type        = string
}

variable "alb_subnet_ids" {
  description = "Subnets of the load balancer (public ones for an internet-facing load balancer), in at least two Availability Zones."
  type        = list(string)
}

variable "task_subnet_ids" {
  description = "Private subnets of the tasks; they reach ECR, Secrets Manager and CloudWatch Logs through NAT or VPC endpoints."
  type        = list(string)
}

variable "alb_internal" {
  description = "Whether the load balancer is internal."
  type        = bool
  default     = false
}

variable "ingress_cidr_blocks" {
  description = "CIDR blocks that may reach the load balancer on 443."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "certificate_arn" {
  description = "ACM certificate of the HTTPS listener."
  type        = string
}

variable "alb_deletion_protection" {
  description = "Deletion protection of the load balancer; set false before `terraform destroy`."
  type        = bool
  default     = true
}

variable "alb_access_logs_bucket" {
  description = "S3 bucket for the load balancer's access logs (its policy must let Elastic Load Balancing write). Null: no access logs."
  type        = string
  default     = null
}

variable "ecr_repository_name" {
  description = "ECR repository (in this account and region) the service's image comes from."
  type        = string
}

variable "initial_image_tag" {
  description = "Image tag of the first revision; later images are deployed by the workflow, not by Terraform."
  type        = string
}

variable "container_port" {
  description = "Port the container listens on; the target groups forward to it."
  type        = number
  default     = 8080
}

variable "health_check_path" {
  description = "Path of the target groups' health check."
  type        = string
  default     = "/health"
}

variable "task_cpu" {
  description = "Fargate task CPU units."
  type        = number
  default     = 256
}

variable "task_memory" {
  description = "Fargate task memory, in MiB."
  type        = number
  default     = 512
}

variable "cpu_architecture" {
  description = "CPU architecture of the image: X86_64 or ARM64."
  type        = string
  default     = "X86_64"
}

variable "desired_count" {
  description = "Tasks of the service; each task set runs this many at 100 %."
  type        = number
  default     = 2
}

variable "create_initial_task_set" {
  description = "Create the first (blue) task set and make it primary with the AWS CLI once, when the service is created. An EXTERNAL service starts without one, and the deploy workflow needs a primary task set to clone."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Retention of the service's log group, in days."
  type        = number
  default     = 365
}

variable "lambda_package_dir" {
  description = "Directory of the functions' `<step>/bootstrap.zip`. Null: target/lambda of this repository, where `make package` puts them."
  type        = string
  default     = null
}

variable "release_tag_pattern" {
  description = "Pushed image tags that deploy the service (the catalogue's `tags` filter: `*` any run of characters, `?` one character)."
  type        = string
  default     = "v*"
}

variable "dynatrace_api_url" {
  description = "Your Dynatrace environment's API base URL (e.g. `https://abc12345.live.dynatrace.com`); null: no Dynatrace verification, events or rotation."
  type        = string
  default     = null
}

variable "rotation_enabled" {
  description = "Rotate the Dynatrace secrets on the module's schedule (needs dynatrace_api_url and the admin token)."
  type        = bool
  default     = false
}

variable "webhook_enabled" {
  description = "Give the deployer a webhook URL for a Spinnaker Webhook stage."
  type        = bool
  default     = false
}

variable "alarm_actions" {
  description = "ARNs (e.g. SNS topics) notified when a deploy fails, times out or is aborted."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags for every resource (provider default tags)."
  type        = map(string)
  default     = {}
}
