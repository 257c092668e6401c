"""Generated protobuf and gRPC code for the article6.v1 package (see protos/)."""
