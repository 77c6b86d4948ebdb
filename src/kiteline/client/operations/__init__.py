"""The SDK's calls, one module per API resource, each written once for both clients as an
operation of `kiteline.client._effects`."""
