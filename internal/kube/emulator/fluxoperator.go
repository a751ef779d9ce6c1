package emulator

// FluxOperatorStandIn stands in, in the sandbox, for the Flux Operator's
// release manifest that a real node downloads (cluster.extraManifests).
//
// It is NOT the upstream manifest, which is AGPL-3.0 and is neither copied
// nor embedded here. It is written from the operator's documentation
// (https://fluxoperator.dev/docs): the objects have the names the
// documentation gives (namespace flux-system, Deployment flux-operator with
// image ghcr.io/controlplaneio-fluxcd/flux-operator, the FluxInstance kind in
// fluxcd.controlplane.io/v1), and the CRD's schema covers only the spec
// fields rawkode-cloud renders, with the required fields and enumerations
// the API reference documents. Fields outside it are unknown, so a typo in
// what rawkode-cloud renders is caught the way the real CRD would catch it.
const FluxOperatorStandIn = `apiVersion: v1
kind: Namespace
metadata:
  name: flux-system
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: fluxinstances.fluxcd.controlplane.io
spec:
  group: fluxcd.controlplane.io
  names:
    kind: FluxInstance
    listKind: FluxInstanceList
    plural: fluxinstances
    singular: fluxinstance
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          apiVersion:
            type: string
          kind:
            type: string
          metadata:
            type: object
          spec:
            type: object
            required: [distribution]
            properties:
              distribution:
                type: object
                required: [version, registry]
                properties:
                  version:
                    type: string
                  registry:
                    type: string
                  artifact:
                    type: string
                  imagePullSecret:
                    type: string
              components:
                type: array
                items:
                  type: string
                  enum: [source-controller, kustomize-controller, helm-controller, notification-controller, image-reflector-controller, image-automation-controller, source-watcher]
              cluster:
                type: object
                properties:
                  type:
                    type: string
                    enum: [kubernetes, openshift, aws, azure, gcp]
                  size:
                    type: string
                    enum: [small, medium, large]
                  multitenant:
                    type: boolean
                  networkPolicy:
                    type: boolean
                  domain:
                    type: string
              sync:
                type: object
                required: [kind, url, ref, path]
                properties:
                  kind:
                    type: string
                    enum: [GitRepository, OCIRepository, Bucket]
                  url:
                    type: string
                    minLength: 1
                  ref:
                    type: string
                    minLength: 1
                  path:
                    type: string
                  pullSecret:
                    type: string
                  provider:
                    type: string
                  interval:
                    type: string
                  name:
                    type: string
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: flux-operator
  namespace: flux-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: flux-operator
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: cluster-admin
subjects:
- kind: ServiceAccount
  name: flux-operator
  namespace: flux-system
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: flux-operator
  namespace: flux-system
spec:
  replicas: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: flux-operator
  template:
    metadata:
      labels:
        app.kubernetes.io/name: flux-operator
    spec:
      serviceAccountName: flux-operator
      containers:
      - name: manager
        image: ghcr.io/controlplaneio-fluxcd/flux-operator:v0.40.0
`
