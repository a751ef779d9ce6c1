package depwarm

import (
	_ "github.com/cloudflare/cloudflare-go/v6"
	_ "github.com/cloudflare/cloudflare-go/v6/dns"
	_ "github.com/cloudflare/cloudflare-go/v6/option"
	_ "github.com/gravitational/teleport/api/client"
	_ "github.com/gravitational/teleport/api/client/proto"
	_ "github.com/gravitational/teleport/api/identityfile"
	_ "github.com/gravitational/teleport/api/types"
	_ "github.com/infisical/go-sdk"
	_ "github.com/scaleway/scaleway-sdk-go/api/baremetal/v1"
	_ "github.com/scaleway/scaleway-sdk-go/api/iam/v1alpha1"
	_ "github.com/scaleway/scaleway-sdk-go/scw"
	_ "github.com/siderolabs/talos/pkg/machinery/api/machine"
	_ "github.com/siderolabs/talos/pkg/machinery/client"
	_ "github.com/siderolabs/talos/pkg/machinery/config/generate"
	_ "github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"
	_ "github.com/siderolabs/talos/pkg/machinery/config/machine"
	_ "github.com/siderolabs/talos/pkg/machinery/config/types/network"
	_ "github.com/spf13/cobra"
	_ "gopkg.in/yaml.v3"
)
