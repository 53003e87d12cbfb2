"""``contiv-certs``: the CA and certificates of contiv's etcd, its clients and the agents' REST."""
