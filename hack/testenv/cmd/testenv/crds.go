package main

// crdManifest holds the CRDs orch's workflows write, with schemas strict
// enough that the API server rejects malformed objects: Istio's
// VirtualService, Cisco's ResourceSyncRule, Calico's BGPPeer and
// BGPConfiguration. They follow the upstream schemas for the fields orch
// uses.
const crdManifest = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: virtualservices.networking.istio.io
spec:
  group: networking.istio.io
  names: {kind: VirtualService, listKind: VirtualServiceList, plural: virtualservices, singular: virtualservice, shortNames: [vs]}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema: &vsschema
      openAPIV3Schema:
        type: object
        required: [spec]
        properties:
          spec:
            type: object
            required: [hosts]
            properties:
              hosts: {type: array, minItems: 1, items: {type: string, minLength: 1}}
              gateways: {type: array, items: {type: string}}
              exportTo: {type: array, items: {type: string}}
              http:
                type: array
                items:
                  type: object
                  properties:
                    name: {type: string}
                    match:
                      type: array
                      items: {type: object, x-kubernetes-preserve-unknown-fields: true}
                    route:
                      type: array
                      items:
                        type: object
                        required: [destination]
                        properties:
                          destination:
                            type: object
                            required: [host]
                            properties:
                              host: {type: string, minLength: 1}
                              subset: {type: string}
                              port:
                                type: object
                                properties:
                                  number: {type: integer, minimum: 1, maximum: 65535}
                          weight: {type: integer, minimum: 0, maximum: 100}
                          headers: {type: object, x-kubernetes-preserve-unknown-fields: true}
                    timeout: {type: string}
                    retries: {type: object, x-kubernetes-preserve-unknown-fields: true}
  - name: v1beta1
    served: true
    storage: false
    schema: *vsschema
  - name: v1alpha3
    served: true
    storage: false
    schema: *vsschema
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: resourcesyncrules.clusterregistry.k8s.cisco.com
spec:
  group: clusterregistry.k8s.cisco.com
  names: {kind: ResourceSyncRule, listKind: ResourceSyncRuleList, plural: resourcesyncrules, singular: resourcesyncrule, shortNames: [rsr]}
  scope: Cluster
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        required: [spec]
        properties:
          spec:
            type: object
            required: [groupVersionKind, rules]
            properties:
              clusterFeatureMatch:
                type: array
                items: {type: object, x-kubernetes-preserve-unknown-fields: true}
              groupVersionKind:
                type: object
                required: [kind, version]
                properties:
                  group: {type: string}
                  version: {type: string, minLength: 1}
                  kind: {type: string, minLength: 1}
              rules:
                type: array
                minItems: 1
                items:
                  type: object
                  properties:
                    match:
                      type: array
                      items:
                        type: object
                        properties:
                          objectKey:
                            type: object
                            properties:
                              name: {type: string}
                              namespace: {type: string}
                          labels:
                            type: array
                            items:
                              type: object
                              properties:
                                matchLabels: {type: object, additionalProperties: {type: string}}
                          namespaces: {type: array, items: {type: string}}
                    mutations: {type: object, x-kubernetes-preserve-unknown-fields: true}
          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
    subresources: {status: {}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: bgppeers.crd.projectcalico.org
spec:
  group: crd.projectcalico.org
  names: {kind: BGPPeer, listKind: BGPPeerList, plural: bgppeers, singular: bgppeer}
  scope: Cluster
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        required: [spec]
        properties:
          spec:
            type: object
            properties:
              node: {type: string}
              nodeSelector: {type: string}
              peerIP: {type: string}
              peerSelector: {type: string}
              asNumber: {type: integer, format: int32, minimum: 1, maximum: 4294967295}
              keepOriginalNextHop: {type: boolean}
              sourceAddress: {type: string, enum: [UseNodeIP, None]}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: bgpconfigurations.crd.projectcalico.org
spec:
  group: crd.projectcalico.org
  names: {kind: BGPConfiguration, listKind: BGPConfigurationList, plural: bgpconfigurations, singular: bgpconfiguration}
  scope: Cluster
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              nodeToNodeMeshEnabled: {type: boolean}
              asNumber: {type: integer, format: int32, minimum: 1, maximum: 4294967295}
              logSeverityScreen: {type: string}
`
