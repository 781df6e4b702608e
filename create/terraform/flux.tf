# Flux on one cluster, bootstrapped by Terraform (or OpenTofu) with the
# fluxcd/flux provider, in the same run that creates the cluster. The
# flux_bootstrap_git resource does what `flux bootstrap git` does: it commits
# flux-system/gotk-components.yaml and gotk-sync.yaml to the cluster's
# directory, installs the controllers, and creates the flux-system Secret.
# docs/design/installing-flux.md explains the choices.

terraform {
  required_providers {
    flux = {
      source = "fluxcd/flux"
    }
    kubernetes = {
      source = "hashicorp/kubernetes"
    }
  }
}

variable "cluster" {
  description = "The cluster's directory under clusters/: development, staging or production."
  type        = string
}

variable "flux_version" {
  description = "The Flux version to install: versions.yaml flux.version, with a leading v."
  type        = string
}

variable "repository_ssh_url" {
  description = "The git repository of this tree, as an ssh:// URL."
  type        = string
}

variable "deploy_key_pem" {
  description = "The private key of a deploy key with write access to the repository."
  type        = string
  sensitive   = true
}

variable "kubeconfig_path" {
  type    = string
  default = "~/.kube/config"
}

provider "kubernetes" {
  config_path = var.kubeconfig_path
}

provider "flux" {
  kubernetes = {
    config_path = var.kubeconfig_path
  }
  git = {
    url    = var.repository_ssh_url
    branch = "main"
    ssh = {
      username    = "git"
      private_key = var.deploy_key_pem
    }
  }
}

# The cluster variables, from the same run that knows them
# (docs/design/reconciliation.md#cluster-variables).
resource "kubernetes_config_map" "cluster_vars" {
  metadata {
    name      = "cluster-vars"
    namespace = "flux-system"
  }
  data = {
    cluster_name     = var.cluster
    platform_git_url = var.repository_ssh_url
  }
}

resource "flux_bootstrap_git" "this" {
  depends_on = [kubernetes_config_map.cluster_vars]

  path    = "clusters/${var.cluster}"
  version = var.flux_version
  # The tree's own flux-system/kustomization.yaml, so the patches it carries
  # (cluster variables, the lockdown) are the ones Terraform commits.
  kustomization_override = file("${path.module}/../../clusters/${var.cluster}/flux-system/kustomization.yaml")
}
