"""brazier.invoke"""
