"""A small VPC whose NAT gateway gives the function fixed egress IPs.

ClickHouse Cloud admits connections by source IP; a Lambda function outside a VPC has none that
are stable. Here the function runs in private subnets and leaves through one NAT gateway, whose
Elastic IP is added to the warehouse's allow list.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass
class NetworkArgs:
    cidr: str
    availability_zones: list[str]


class Network(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("salla:infra:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        blocks = list(ipaddress.ip_network(args.cidr).subnets(new_prefix=20))
        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            opts=child,
        )
        gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=self.vpc.id, opts=child)
        public = aws.ec2.Subnet(
            f"{name}-public",
            vpc_id=self.vpc.id,
            cidr_block=str(blocks[0]),
            availability_zone=args.availability_zones[0],
            opts=child,
        )
        public_routes = aws.ec2.RouteTable(
            f"{name}-public-routes",
            vpc_id=self.vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": gateway.id}],
            opts=child,
        )
        aws.ec2.RouteTableAssociation(
            f"{name}-public-assoc", subnet_id=public.id, route_table_id=public_routes.id, opts=child
        )
        self.egress_ip = aws.ec2.Eip(f"{name}-nat-ip", domain="vpc", opts=child)
        nat = aws.ec2.NatGateway(
            f"{name}-nat", allocation_id=self.egress_ip.id, subnet_id=public.id, opts=child
        )
        private_routes = aws.ec2.RouteTable(
            f"{name}-private-routes",
            vpc_id=self.vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}],
            opts=child,
        )
        self.private_subnets = []
        # What must exist before a function in these subnets can reach the internet.
        self.egress_ready: list[pulumi.Resource] = [nat, private_routes]
        for index, zone in enumerate(args.availability_zones, start=1):
            subnet = aws.ec2.Subnet(
                f"{name}-private-{index}",
                vpc_id=self.vpc.id,
                cidr_block=str(blocks[index]),
                availability_zone=zone,
                opts=child,
            )
            association = aws.ec2.RouteTableAssociation(
                f"{name}-private-assoc-{index}",
                subnet_id=subnet.id,
                route_table_id=private_routes.id,
                opts=child,
            )
            self.private_subnets.append(subnet)
            self.egress_ready.append(association)
        self.function_security_group = aws.ec2.SecurityGroup(
            f"{name}-function",
            vpc_id=self.vpc.id,
            description="Data pipeline function: no inbound, all outbound",
            egress=[{"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"]}],
            opts=child,
        )
        self.egress_cidrs = self.egress_ip.public_ip.apply(lambda ip: [f"{ip}/32"])
        self.register_outputs({"egress_ip": self.egress_ip.public_ip})
