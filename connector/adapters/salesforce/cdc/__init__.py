"""Salesforce Change Data Capture over the Pub/Sub API: proto stubs, event decoding and the gRPC client."""
