package intake

import _ "embed"

// OpenAPI is the OpenAPI 3 description of this API, served at /openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte
