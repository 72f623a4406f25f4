"""brazier.scheduler"""
