// Gremlin Server 3.7 binds no traversal source by itself: bind "g" to the graph.
def globals = [:]
globals << [g : traversal().withEmbedded(graph)]
