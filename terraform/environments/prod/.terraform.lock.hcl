# This file is maintained automatically by "terraform init".
# Manual edits may be lost in future updates.
#
# Written by hand, without hashes: the build environment cannot reach the registry to compute
# them. Before the first apply, run once with network access, from this directory,
#   terraform providers lock -platform=linux_amd64 -platform=darwin_arm64
# and commit the result (docs/runbook-cloud-run.md, "Provider lock"); Terraform then rewrites
# this file with the same versions and their h1:/zh: hashes, and this note goes with it.

provider "registry.terraform.io/hashicorp/google" {
  version     = "6.50.0"
  constraints = ">= 6.31.0, ~> 6.31, < 7.0.0"
}

provider "registry.terraform.io/hashicorp/random" {
  version     = "3.7.2"
  constraints = ">= 3.7.0, ~> 3.7, < 4.0.0"
}

provider "registry.terraform.io/hashicorp/time" {
  version     = "0.13.1"
  constraints = ">= 0.13.0, ~> 0.13, < 1.0.0"
}
