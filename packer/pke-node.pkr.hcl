# pke-node: a vSphere VM template that every node of a pke cluster is cloned from.
#
# Two sources, one build:
#   vsphere-clone.pke-node  from a base OS template that already exists in vCenter
#   vsphere-iso.pke-node    from a Debian installer ISO, installed unattended with http/preseed.cfg
#
# Written for Packer 1.6.6 (Debian's packer package) and current Packer alike; current
# Packer also needs plugins.pkr.hcl.example copied to plugins.pkr.hcl (see README.md).

# --- vCenter connection ----------------------------------------------------------------

variable "vcenter_server" {
  type        = string
  description = "vCenter host name or address, optionally with :port."
}

variable "vcenter_username" {
  type = string
}

variable "vcenter_password" {
  type      = string
  sensitive = true
}

variable "vcenter_insecure" {
  type        = bool
  default     = false
  description = "Skip TLS verification of vCenter's certificate (lab vCenters with self-signed certificates)."
}

# --- Inventory ---------------------------------------------------------------------------

variable "datacenter" {
  type = string
}

variable "cluster" {
  type    = string
  default = ""
}

variable "host" {
  type        = string
  default     = ""
  description = "ESXi host to build on; needed when the cluster has no DRS, or no cluster is given."
}

variable "resource_pool" {
  type    = string
  default = ""
}

variable "datastore" {
  type = string
}

variable "folder" {
  type        = string
  default     = ""
  description = "VM folder for the template, relative to the datacenter's vm folder."
}

variable "network" {
  type        = string
  description = "Port group the build VM is attached to; it needs DHCP and a route to the package repositories."
}

variable "template_name" {
  type        = string
  default     = ""
  description = "Name of the resulting template; default pke-node-k8s-<kubernetes_version>."
}

variable "base_template" {
  type        = string
  default     = ""
  description = "vsphere-clone only: the base OS template (Debian 12 or Ubuntu 22.04/24.04 with open-vm-tools and SSH)."
}

# --- Hardware ------------------------------------------------------------------------------

variable "cpus" {
  type    = number
  default = 2
}

variable "memory_mb" {
  type    = number
  default = 4096
}

variable "disk_size_mb" {
  type    = number
  default = 40960
}

variable "guest_os_type" {
  type    = string
  default = "debian12_64Guest"
}

# --- Installer (vsphere-iso only) ---------------------------------------------------------

variable "iso_url" {
  type    = string
  default = "https://cdimage.debian.org/cdimage/archive/12.8.0/amd64/iso-cd/debian-12.8.0-amd64-netinst.iso"
}

variable "iso_checksum" {
  type    = string
  default = "file:https://cdimage.debian.org/cdimage/archive/12.8.0/amd64/iso-cd/SHA256SUMS"
}

variable "iso_paths" {
  type        = list(string)
  default     = []
  description = "Datastore paths of an installer ISO already uploaded, e.g. [\"[iso] debian-12.8.0-amd64-netinst.iso\"]; set iso_url to \"\" then."
}

# --- Communicator --------------------------------------------------------------------------

variable "communicator" {
  type        = string
  default     = "ssh"
  description = "\"none\" skips power-on and provisioning: the CI build against the vCenter simulator uses it."

  validation {
    condition     = contains(["ssh", "none"], var.communicator)
    error_message = "The communicator must be \"ssh\" or \"none\"."
  }
}

variable "ssh_username" {
  type    = string
  default = "pke-build"
}

variable "ssh_password" {
  type      = string
  default   = ""
  sensitive = true
}

variable "ssh_private_key_file" {
  type    = string
  default = ""
}

# --- What goes into the image ---------------------------------------------------------------

variable "kubernetes_version" {
  type        = string
  default     = "1.31.2"
  description = "kubeadm, kubelet and kubectl version, without the leading v."

  validation {
    condition     = length(split(".", var.kubernetes_version)) == 3 && substr(var.kubernetes_version, 0, 1) != "v"
    error_message = "The kubernetes_version must be a version such as 1.31.2: three numbers, no leading v."
  }
}

variable "containerd_version" {
  type    = string
  default = "1.6.20"

  validation {
    condition     = length(split(".", var.containerd_version)) == 3 && substr(var.containerd_version, 0, 1) != "v"
    error_message = "The containerd_version must be a version such as 1.31.2: three numbers, no leading v."
  }
}

variable "runc_version" {
  type    = string
  default = "1.1.5"

  validation {
    condition     = length(split(".", var.runc_version)) == 3 && substr(var.runc_version, 0, 1) != "v"
    error_message = "The runc_version must be a version such as 1.31.2: three numbers, no leading v."
  }
}

variable "crictl_version" {
  type    = string
  default = "1.31.1"

  validation {
    condition     = length(split(".", var.crictl_version)) == 3 && substr(var.crictl_version, 0, 1) != "v"
    error_message = "The crictl_version must be a version such as 1.31.2: three numbers, no leading v."
  }
}

variable "containerd_package" {
  type        = string
  default     = "containerd"
  description = "Debian's containerd; containerd.io when Docker's repository is configured in the base image."
}

variable "runc_package" {
  type        = string
  default     = "runc"
  description = "Set to \"\" when the containerd package bundles runc (containerd.io does)."
}

variable "package_source" {
  type        = string
  default     = "apt"
  description = "\"apt\": Kubernetes packages from k8s_apt_repo_url; \"local\": every package from the .deb files in local_packages_dir (air-gapped sites)."

  validation {
    condition     = contains(["apt", "local"], var.package_source)
    error_message = "The package_source must be \"apt\" or \"local\"."
  }
}

variable "k8s_apt_repo_url" {
  type        = string
  default     = ""
  description = "A pkgs.k8s.io-style flat apt repository; default https://pkgs.k8s.io/core:/stable:/v<major.minor>/deb/."
}

variable "k8s_apt_key_url" {
  type        = string
  default     = ""
  description = "The repository's signing key (ASCII-armoured); default <k8s_apt_repo_url>Release.key."
}

variable "local_packages_dir" {
  type        = string
  default     = ""
  description = "Directory of .deb files uploaded for package_source = \"local\"; default packer/packages."
}

variable "image_registry" {
  type        = string
  default     = "registry.k8s.io"
  description = "Where the control-plane images are pre-pulled from (a mirror for air-gapped sites)."
}

variable "prepull_images" {
  type    = bool
  default = true
}

variable "agent_binary" {
  type        = string
  default     = ""
  description = "The pke-agent executable to bake in; default dist/pke-agent of this repository."
}

variable "addons_dir" {
  type        = string
  default     = ""
  description = "The add-on bundles to bake in, as scripts/addons/fetch.ts writes them (fetched and sha256-checked before the build); default dist/addons of this repository."
}

locals {
  template_name      = var.template_name != "" ? var.template_name : "pke-node-k8s-${var.kubernetes_version}"
  agent_binary       = var.agent_binary != "" ? var.agent_binary : "${path.root}/../dist/pke-agent"
  local_packages_dir = var.local_packages_dir != "" ? var.local_packages_dir : "${path.root}/packages"
  addons_dir         = var.addons_dir != "" ? var.addons_dir : "${path.root}/../dist/addons"

  # Kept on the template (not guestinfo, so not visible to the guest): what the template holds.
  extra_config = {
    "disk.EnableUUID"               = "TRUE"
    "pke.image.kubernetes-version"  = var.kubernetes_version
    "pke.image.containerd-version"  = var.containerd_version
    "pke.image.source-communicator" = var.communicator
  }

  # sudo reads the password only where the build user lacks NOPASSWD.
  sudo_execute = "echo '${var.ssh_password}' | sudo -S env {{ .Vars }} bash '{{ .Path }}'"
}

source "vsphere-clone" "pke-node" {
  vcenter_server      = var.vcenter_server
  username            = var.vcenter_username
  password            = var.vcenter_password
  insecure_connection = var.vcenter_insecure

  datacenter    = var.datacenter
  cluster       = var.cluster
  host          = var.host
  resource_pool = var.resource_pool
  datastore     = var.datastore
  folder        = var.folder
  vm_name       = local.template_name

  template     = var.base_template
  linked_clone = false
  network      = var.network

  CPUs      = var.cpus
  RAM       = var.memory_mb
  disk_size = var.disk_size_mb

  configuration_parameters = local.extra_config
  convert_to_template      = true
  notes                    = "pke-node template: Kubernetes ${var.kubernetes_version}, containerd ${var.containerd_version}. Built by packer/pke-node.pkr.hcl."

  communicator         = var.communicator
  ssh_username         = var.ssh_username
  ssh_password         = var.ssh_password
  ssh_private_key_file = var.ssh_private_key_file
  ssh_timeout          = "30m"
  shutdown_command     = "echo '${var.ssh_password}' | sudo -S shutdown -P now"
  shutdown_timeout     = "15m"
}

source "vsphere-iso" "pke-node" {
  vcenter_server      = var.vcenter_server
  username            = var.vcenter_username
  password            = var.vcenter_password
  insecure_connection = var.vcenter_insecure

  datacenter    = var.datacenter
  cluster       = var.cluster
  host          = var.host
  resource_pool = var.resource_pool
  datastore     = var.datastore
  folder        = var.folder
  vm_name       = local.template_name

  guest_os_type        = var.guest_os_type
  CPUs                 = var.cpus
  RAM                  = var.memory_mb
  disk_controller_type = ["pvscsi"]

  storage {
    disk_size             = var.disk_size_mb
    disk_thin_provisioned = true
  }

  network_adapters {
    network      = var.network
    network_card = "vmxnet3"
  }

  iso_url      = var.iso_url
  iso_checksum = var.iso_checksum
  iso_paths    = var.iso_paths

  http_directory = "${path.root}/http"
  boot_wait      = "5s"
  # Debian's BIOS boot menu: Esc to the boot: prompt, then the "auto" label with our preseed.
  # The build user is passed on the kernel command line so that it matches ssh_username.
  boot_command = [
    "<esc><wait>",
    "auto url=http://{{ .HTTPIP }}:{{ .HTTPPort }}/preseed.cfg",
    " hostname=pke-template domain=localdomain",
    " passwd/username=${var.ssh_username} passwd/user-fullname=pke-build",
    " passwd/user-password=${var.ssh_password} passwd/user-password-again=${var.ssh_password}",
    "<enter>",
  ]

  configuration_parameters = local.extra_config
  convert_to_template      = true
  notes                    = "pke-node template: Kubernetes ${var.kubernetes_version}, containerd ${var.containerd_version}. Built by packer/pke-node.pkr.hcl."

  communicator         = var.communicator
  ssh_username         = var.ssh_username
  ssh_password         = var.ssh_password
  ssh_private_key_file = var.ssh_private_key_file
  ssh_timeout          = "45m"
  shutdown_command     = "echo '${var.ssh_password}' | sudo -S shutdown -P now"
  shutdown_timeout     = "15m"
}

build {
  sources = [
    "source.vsphere-clone.pke-node",
    "source.vsphere-iso.pke-node",
  ]

  provisioner "shell" {
    inline = ["rm -rf /tmp/pke-build && mkdir -p /tmp/pke-build/packages /tmp/pke-build/cloud-init /tmp/pke-build/addons"]
  }

  provisioner "file" {
    source      = local.agent_binary
    destination = "/tmp/pke-build/pke-agent"
  }

  provisioner "file" {
    source      = "${path.root}/scripts"
    destination = "/tmp/pke-build"
  }

  provisioner "file" {
    source      = "${path.root}/../cloud-init/image/"
    destination = "/tmp/pke-build/cloud-init"
  }

  provisioner "file" {
    source      = "${local.addons_dir}/"
    destination = "/tmp/pke-build/addons"
  }

  provisioner "file" {
    source      = "${local.local_packages_dir}/"
    destination = "/tmp/pke-build/packages"
  }

  provisioner "shell" {
    execute_command = local.sudo_execute
    environment_vars = [
      "PKE_KUBERNETES_VERSION=${var.kubernetes_version}",
      "PKE_CONTAINERD_VERSION=${var.containerd_version}",
      "PKE_RUNC_VERSION=${var.runc_version}",
      "PKE_CRICTL_VERSION=${var.crictl_version}",
      "PKE_CONTAINERD_PACKAGE=${var.containerd_package}",
      "PKE_RUNC_PACKAGE=${var.runc_package}",
      "PKE_PACKAGE_SOURCE=${var.package_source}",
      "PKE_K8S_APT_REPO_URL=${var.k8s_apt_repo_url}",
      "PKE_K8S_APT_KEY_URL=${var.k8s_apt_key_url}",
      "PKE_IMAGE_REGISTRY=${var.image_registry}",
      "PKE_PREPULL_IMAGES=${var.prepull_images}",
      "PKE_BUILD_DIR=/tmp/pke-build",
    ]
    inline = ["bash /tmp/pke-build/scripts/provision.sh"]
  }

  provisioner "shell" {
    execute_command = local.sudo_execute
    inline          = ["rm -rf /tmp/pke-build"]
  }
}
