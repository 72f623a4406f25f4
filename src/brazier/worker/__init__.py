"""brazier.worker"""
