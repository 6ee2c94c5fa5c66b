"""Find existing datasets and pretrained students for a task before generating anything.

Both retrievers rank a catalog with BM25 + MiniLM embeddings (distill.retrieval.ranking);
the dataset one converts a chosen dataset into extra training data, the model one adds HyDE,
a size limit and a popularity prior.
"""
